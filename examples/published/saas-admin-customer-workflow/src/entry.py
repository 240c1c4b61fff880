"""Python port of Cloudflare's SaaS admin template's API and customer workflow.

The original is an Astro app: each ``src/pages/api/...ts`` file is a route, and
``src/workflows/wrapper.js`` exports the Astro handler and ``CustomerWorkflow`` together. Here
one fetch handler routes the same API paths (every one needs the API token, as a
``Authorization: Bearer <token>`` or ``x-api-token`` header), and this module exports the
workflow class beside it.

    GET  /api/customers                  {"customers": [...]}
    POST /api/customers                  {"name", "email", "notes"?, "subscription"?}
    GET  /api/customers/<id>             {"customer": {...}}
    POST /api/customers/<id>/workflow    starts CustomerWorkflow for the customer (202)
    GET  /api/subscriptions              {"subscriptions": [...]}
    POST /api/subscriptions              {"name", "description", "price", "features"?}
    GET  /api/subscriptions/<id>         {"subscription": {...}}
"""

import re
from urllib.parse import urlparse

from lib.api import validate_api_token_response
from lib.services.customer import CustomerService
from lib.services.subscription import SubscriptionService
from workers import Response, WorkerEntrypoint
from workflows.customer_workflow import CustomerWorkflow

__all__ = ["CustomerWorkflow", "Default"]


async def customers_get(request, env, params):
    customers = await CustomerService(env.DB).get_all()
    if customers is not None:
        return Response.json({"customers": customers})
    return Response.json({"message": "Couldn't load customers"}, status=500)


async def customers_post(request, env, params):
    body = await request.json()
    success = await CustomerService(env.DB).create(body)
    if success:
        return Response.json({"message": "Customer created successfully", "success": True},
                             status=201)
    return Response.json({"message": "Couldn't create customer", "success": False},
                         status=500)


async def customer_get(request, env, params):
    customer = await CustomerService(env.DB).get_by_id(params["id"])
    if not customer:
        return Response.json({"message": "Customer not found"}, status=404)
    return Response.json({"customer": customer})


async def customer_workflow_post(request, env, params):
    await env.CUSTOMER_WORKFLOW.create(params={"id": params["id"]})
    return Response(None, status=202)


async def subscriptions_get(request, env, params):
    try:
        subscriptions = await SubscriptionService(env.DB).get_all()
        return Response.json({"subscriptions": subscriptions})
    except Exception:
        return Response.json({"message": "Couldn't load subscriptions"}, status=500)


async def subscriptions_post(request, env, params):
    try:
        body = await request.json()
        await SubscriptionService(env.DB).create(body)
        return Response.json(
            {"message": "Subscription created successfully", "success": True}, status=201)
    except Exception as error:
        return Response.json(
            {"message": str(error) or "Failed to create subscription", "success": False},
            status=500)


async def subscription_get(request, env, params):
    try:
        subscription = await SubscriptionService(env.DB).get_by_id(params["id"])
        if not subscription:
            return Response.json({"message": "Subscription not found"}, status=404)
        return Response.json({"subscription": subscription})
    except Exception:
        return Response.json({"message": "Couldn't load subscription"}, status=500)


# (method, path pattern, handler): the Astro routes of src/pages/api
ROUTES = [
    ("GET", r"/api/customers", customers_get),
    ("POST", r"/api/customers", customers_post),
    ("GET", r"/api/customers/(?P<id>[^/]+)", customer_get),
    ("POST", r"/api/customers/(?P<id>[^/]+)/workflow", customer_workflow_post),
    ("GET", r"/api/subscriptions", subscriptions_get),
    ("POST", r"/api/subscriptions", subscriptions_post),
    ("GET", r"/api/subscriptions/(?P<id>[^/]+)", subscription_get),
]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path.rstrip("/")
        for method, pattern, handler in ROUTES:
            found = re.fullmatch(pattern, path)
            if found and request.method == method:
                invalid_token_response = validate_api_token_response(
                    request, getattr(self.env, "API_TOKEN", None))
                if invalid_token_response:
                    return invalid_token_response
                return await handler(request, self.env, found.groupdict())
        return Response.json({"message": "Not found"}, status=404)
