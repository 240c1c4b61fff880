"""The Images table through the ``DB`` binding (``services/database.ts`` in the original)."""


class DatabaseService:
    def __init__(self, db):
        self.db = db

    async def insert_image(self, image_key, instance_id):
        try:
            await self.db.prepare(
                "INSERT INTO Images (ImageKey, InstanceID) VALUES (?, ?)"
            ).bind(image_key, instance_id).run()
        except Exception as error:
            raise RuntimeError(f"Failed to insert image: {error}") from error

    async def update_image_tags(self, instance_id, tags):
        try:
            await self.db.prepare(
                "UPDATE Images SET ImageTags = ? WHERE InstanceID = ?"
            ).bind(tags, instance_id).run()
        except Exception as error:
            raise RuntimeError(f"Failed to update image tags: {error}") from error

    async def get_image_tags(self, instance_id):
        try:
            result = await self.db.prepare(
                "SELECT ImageTags FROM Images WHERE InstanceID = ?"
            ).bind(instance_id).first()
        except Exception as error:
            raise RuntimeError(f"Failed to get image tags: {error}") from error
        return (result and result["ImageTags"]) or None
