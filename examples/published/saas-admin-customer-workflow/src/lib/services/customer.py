"""Customers in D1 (``src/lib/services/customer.ts``)."""

CUSTOMER_QUERIES = {
    "BASE_SELECT": """
    SELECT
      customers.*,
      customer_subscriptions.id as subscription_id,
      customer_subscriptions.status as subscription_status,
      subscriptions.name as subscription_name,
      subscriptions.description as subscription_description,
      subscriptions.price as subscription_price
    FROM customers
    LEFT JOIN customer_subscriptions
      ON customers.id = customer_subscriptions.customer_id
    LEFT JOIN subscriptions
      ON customer_subscriptions.subscription_id = subscriptions.id
  """,
    "INSERT_CUSTOMER": "INSERT INTO customers (name, email, notes) VALUES (?, ?, ?)",
    "INSERT_CUSTOMER_SUBSCRIPTION": """
    INSERT INTO customer_subscriptions (customer_id, subscription_id, status)
    VALUES (?, ?, ?)
  """,
    "GET_BY_ID": "WHERE customers.id = ?",
    "GET_BY_EMAIL": "WHERE customers.email = ?",
}

_JOINED = ("subscription_id", "subscription_status", "subscription_name",
           "subscription_description", "subscription_price")


def process_customer_results(rows):
    """One customer per id, its subscription (if any) nested, the join's columns removed."""
    customers = {}
    for row in rows:
        if row["id"] in customers:
            continue
        customer = {k: v for k, v in row.items() if k not in _JOINED}
        if row["subscription_id"]:
            customer["subscription"] = {
                "id": row["subscription_id"],
                "status": row["subscription_status"],
                "name": row["subscription_name"],
                "description": row["subscription_description"],
                "price": row["subscription_price"],
            }
        customers[row["id"]] = customer
    return list(customers.values())


class CustomerService:
    def __init__(self, DB):
        self.DB = DB

    async def get_by_id(self, id):
        query = f"{CUSTOMER_QUERIES['BASE_SELECT']} {CUSTOMER_QUERIES['GET_BY_ID']}"
        response = await self.DB.prepare(query).bind(id).all()
        if response.success:
            customers = process_customer_results(response.results)
            return customers[0] if customers else None
        return None

    async def get_by_email(self, email):
        query = f"{CUSTOMER_QUERIES['BASE_SELECT']} {CUSTOMER_QUERIES['GET_BY_EMAIL']}"
        response = await self.DB.prepare(query).bind(email).all()
        if response.success:
            customers = process_customer_results(response.results)
            return customers[0] if customers else None
        return None

    async def get_all(self):
        query = f"{CUSTOMER_QUERIES['BASE_SELECT']} ORDER BY customers.id ASC"
        response = await self.DB.prepare(query).all()
        if response.success:
            return process_customer_results(response.results)
        return []

    async def create(self, customer_data):
        name = customer_data.get("name")
        email = customer_data.get("email")
        notes = customer_data.get("notes")
        subscription = customer_data.get("subscription")

        customer_response = await self.DB.prepare(CUSTOMER_QUERIES["INSERT_CUSTOMER"]).bind(
            name, email, notes or None).run()
        if not customer_response.success:
            raise RuntimeError("Failed to create customer")

        customer_id = customer_response.meta.last_row_id

        if subscription:
            subscription_response = await self.DB.prepare(
                CUSTOMER_QUERIES["INSERT_CUSTOMER_SUBSCRIPTION"]
            ).bind(customer_id, subscription["id"], subscription["status"]).run()
            if not subscription_response.success:
                raise RuntimeError("Failed to create customer subscription relationship")

        return {"success": True, "customerId": customer_id}
