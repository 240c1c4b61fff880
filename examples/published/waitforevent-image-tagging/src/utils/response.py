"""JSON responses with the CORS headers (``utils/response.ts`` in the original)."""

from config import CORS_HEADERS, HTTP_STATUS
from workers import Response


class ResponseHandler:
    @staticmethod
    def success(data, status=HTTP_STATUS["OK"]):
        return Response.json({"success": True, **data}, status=status, headers=CORS_HEADERS)

    @staticmethod
    def error(message, status=HTTP_STATUS["INTERNAL_SERVER_ERROR"]):
        return Response.json({"success": False, "error": message}, status=status,
                             headers=CORS_HEADERS)

    @staticmethod
    def bad_request(message):
        return ResponseHandler.error(message, HTTP_STATUS["BAD_REQUEST"])

    @staticmethod
    def not_found(message="Resource not found"):
        return ResponseHandler.error(message, HTTP_STATUS["NOT_FOUND"])

    @staticmethod
    def method_not_allowed(message="Method not allowed"):
        return ResponseHandler.error(message, HTTP_STATUS["METHOD_NOT_ALLOWED"])

    @staticmethod
    def cors_preflight():
        return Response(None, headers=CORS_HEADERS)
