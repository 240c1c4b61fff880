"""API token checks (``src/lib/api.ts``: the server half; the fetch helpers are the UI's)."""

import hmac

from workers import Response


def safe_compare(a, b):
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def validate_api_token(request, api_token):
    try:
        if not api_token:
            print("No API token provided. Set one as an environment variable.")
            return False

        auth_header = request.headers.get("authorization")
        token_to_validate = request.headers.get("x-api-token")

        if auth_header:
            if auth_header.startswith("Bearer "):
                token_to_validate = auth_header[7:]
            elif auth_header.startswith("Token "):
                token_to_validate = auth_header[6:]
            else:
                token_to_validate = auth_header

        if not token_to_validate:
            return False

        return safe_compare(api_token.strip(), token_to_validate.strip())
    except Exception as error:
        print("Error validating API token:", error)
        return False


def validate_api_token_response(request, api_token):
    """A 401 response when the request's token is wrong, else None."""
    if not validate_api_token(request, api_token):
        return Response.json({"message": "Invalid API token"}, status=401)
    return None
