"""Subscriptions and their features in D1 (``src/lib/services/subscription.ts``)."""

SUBSCRIPTION_QUERIES = {
    "BASE_SELECT": """
    SELECT
      subscriptions.*,
      features.id as feature_id,
      features.name as feature_name,
      features.description as feature_description
    FROM subscriptions
    LEFT JOIN subscription_features
      ON subscriptions.id = subscription_features.subscription_id
    LEFT JOIN features
      ON subscription_features.feature_id = features.id
  """,
    "INSERT_SUBSCRIPTION": "INSERT INTO subscriptions (name, description, price) VALUES(?, ?, ?)",
    "INSERT_FEATURE": "INSERT OR IGNORE INTO features(name, description) VALUES(?, ?)",
    "SELECT_FEATURE_ID": "SELECT id FROM features WHERE name = ?",
    "INSERT_SUBSCRIPTION_FEATURE":
        "INSERT INTO subscription_features(subscription_id, feature_id) VALUES(?, ?)",
}

_JOINED = ("feature_id", "feature_name", "feature_description")


def process_subscription_results(rows):
    """One subscription per id with its ``features`` list, the join's columns removed."""
    subscriptions = {}
    for row in rows:
        if row["id"] not in subscriptions:
            subscription = {k: v for k, v in row.items() if k not in _JOINED}
            subscription["features"] = []
            subscriptions[row["id"]] = subscription
        if row["feature_id"]:
            subscriptions[row["id"]]["features"].append({
                "id": row["feature_id"],
                "name": row["feature_name"],
                "description": row["feature_description"],
            })
    return list(subscriptions.values())


class SubscriptionService:
    def __init__(self, DB):
        self.DB = DB

    async def get_by_id(self, id):
        query = f"{SUBSCRIPTION_QUERIES['BASE_SELECT']} WHERE subscriptions.id = ?"
        response = await self.DB.prepare(query).bind(id).all()
        if response.success:
            subscriptions = process_subscription_results(response.results)
            return subscriptions[0] if subscriptions else None
        return None

    async def get_all(self):
        query = f"{SUBSCRIPTION_QUERIES['BASE_SELECT']} ORDER BY subscriptions.id ASC"
        response = await self.DB.prepare(query).all()
        if response.success:
            return process_subscription_results(response.results)
        return []

    async def create(self, subscription_data):
        print(subscription_data)
        name = subscription_data.get("name")
        description = subscription_data.get("description")
        price = subscription_data.get("price")
        features = subscription_data.get("features")

        subscription_response = await self.DB.prepare(
            SUBSCRIPTION_QUERIES["INSERT_SUBSCRIPTION"]).bind(name, description, price).run()
        if not subscription_response.success:
            raise RuntimeError("Failed to create subscription")

        subscription_id = subscription_response.meta.last_row_id

        for feature in features or []:
            await self.DB.prepare(SUBSCRIPTION_QUERIES["INSERT_FEATURE"]).bind(
                feature["name"], feature.get("description") or None).run()

            feature_id_response = await self.DB.prepare(
                SUBSCRIPTION_QUERIES["SELECT_FEATURE_ID"]).bind(feature["name"]).all()
            if not feature_id_response.success or not feature_id_response.results:
                raise RuntimeError(f"Could not get ID for feature: {feature['name']}")

            feature_id = feature_id_response.results[0]["id"]
            relationship_response = await self.DB.prepare(
                SUBSCRIPTION_QUERIES["INSERT_SUBSCRIPTION_FEATURE"]
            ).bind(subscription_id, feature_id).run()
            if not relationship_response.success:
                raise RuntimeError(f"Failed to link feature {feature['name']} to subscription")

        return {"success": True, "subscriptionId": subscription_id}
