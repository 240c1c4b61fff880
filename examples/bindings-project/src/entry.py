"""A checkout saga over four bindings, each effect undone by its rollback handler.

The checkout workflow, one instance per order:

1. claim order key   KV ``ORDER_KEYS``   ``order:<id>`` -> this instance (idempotency)
2. record order      D1 ``DB``           a ``pending`` row in ``orders``
3. reserve stock     ``INVENTORY``       the SKU's Durable Object takes ``qty`` off its stock
4. store invoice     R2 ``INVOICES``     ``<id>.json``
5. charge card       (pretend)           declined above ``CARD_LIMIT`` cents
6. confirm order     D1 + KV             the row becomes ``paid``, the key ``confirmed``

When a step fails for good (stock runs out, the card is declined), the handlers of the steps
that ran undo them in reverse order: the invoice is deleted, the stock released, the order
``cancelled`` and the key removed, so the same order id can be placed again.

HTTP API:
    POST /inventory/<sku>   body {"qty"}                                 restock the SKU
    GET  /inventory/<sku>                                                 its stock
    POST /orders            body {"order_id", "sku", "qty", "unit_price"} -> {"id", "status"}
    GET  /orders/<order_id>  the D1 row, the KV key, the invoice and the instance's status
"""

import json
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint
from workers.workflows import NonRetryableError

from workflows_saga import WorkflowEntrypoint

NO_RETRY = {"retries": {"limit": 0, "delay": 1000, "backoff": "constant"}}
KEY_TTL_SECONDS = 24 * 60 * 60


def order_key(order_id):
    """The KV key that marks an order as taken by one checkout instance."""
    return f"order:{order_id}"


def invoice_key(order_id):
    """The R2 key of an order's invoice."""
    return f"{order_id}.json"


class Inventory(DurableObject):
    """The stock of one SKU (one object per SKU, by name).

    ``on_hand`` lives in the key-value storage, the reservations in a SQL table; a
    reservation and its stock change are written in one transaction.
    """

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS reservations ("
            " order_id TEXT PRIMARY KEY, qty INTEGER NOT NULL)")

    async def _on_hand(self):
        return await self.ctx.storage.get("on_hand") or 0

    def _reserved(self, order_id):
        rows = self.ctx.storage.sql.exec(
            "SELECT qty FROM reservations WHERE order_id = ?", order_id).toArray()
        return rows[0].qty if rows else None

    async def restock(self, qty):
        """Add ``qty`` units; returns the new level."""
        await self.ctx.storage.put("on_hand", await self._on_hand() + qty)
        return await self.level()

    async def reserve(self, order_id, qty):
        """Take ``qty`` units for ``order_id`` (again for the same order: nothing changes).

        Returns ``{"ok": False, "on_hand": n}`` when there are not enough: the caller decides
        whether that is an error.
        """
        held = self._reserved(order_id)
        on_hand = await self._on_hand()
        if held is not None:
            return {"ok": True, "reserved": held, "on_hand": on_hand}
        if qty > on_hand:
            return {"ok": False, "on_hand": on_hand}
        sql = self.ctx.storage.sql

        async def take(txn):
            await txn.put("on_hand", on_hand - qty)
            sql.exec("INSERT INTO reservations (order_id, qty) VALUES (?, ?)", order_id, qty)

        await self.ctx.storage.transaction(take)
        return {"ok": True, "reserved": qty, "on_hand": on_hand - qty}

    async def release(self, order_id):
        """Give back what ``order_id`` reserved; returns how many units came back."""
        held = self._reserved(order_id)
        if held is None:
            return 0
        on_hand = await self._on_hand()
        sql = self.ctx.storage.sql

        async def give_back(txn):
            await txn.put("on_hand", on_hand + held)
            sql.exec("DELETE FROM reservations WHERE order_id = ?", order_id)

        await self.ctx.storage.transaction(give_back)
        return held

    async def level(self):
        """``{"on_hand", "reserved", "reservations": {order_id: qty}}``."""
        rows = self.ctx.storage.sql.exec(
            "SELECT order_id, qty FROM reservations ORDER BY order_id").toArray()
        return {"on_hand": await self._on_hand(),
                "reserved": sum(row.qty for row in rows),
                "reservations": {row.order_id: row.qty for row in rows}}


class CheckoutWorkflow(WorkflowEntrypoint):
    """Claim, record, reserve, invoice, charge, confirm; undo in reverse when a step fails."""

    async def run(self, event, step):
        order = event["payload"]
        order_id = order["order_id"]
        sku = order["sku"]
        qty = int(order["qty"])
        unit_price = int(order["unit_price"])
        total = qty * unit_price
        instance_id = event["instanceId"]
        env = self.env
        key = order_key(order_id)
        inventory = env.INVENTORY.get(env.INVENTORY.idFromName(sku))

        async def release_key(rb):
            if rb.output is not None:  # None: the key was another instance's, leave it
                await env.ORDER_KEYS.delete(key)

        @step.do("claim order key", config=NO_RETRY, rollback=release_key)
        async def claim():
            holder = await env.ORDER_KEYS.get(key, type="json")
            if holder is not None and holder["instance"] != instance_id:
                raise NonRetryableError(
                    f"order {order_id} is already taken by instance {holder['instance']}")
            await env.ORDER_KEYS.put(
                key, json.dumps({"instance": instance_id, "state": "processing"}),
                expirationTtl=KEY_TTL_SECONDS)
            return {"key": key}

        await claim()

        async def cancel_order(rb):
            await env.DB.prepare(
                "UPDATE orders SET status = 'cancelled', updated_at = CURRENT_TIMESTAMP "
                "WHERE id = ? AND instance_id = ?").bind(order_id, instance_id).run()

        @step.do("record order", rollback=cancel_order)
        async def record():
            # An order cancelled by an earlier checkout is taken over by this one.
            result = await env.DB.prepare(
                "INSERT INTO orders (id, sku, qty, unit_price, total, status, instance_id) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, qty = excluded.qty, "
                "unit_price = excluded.unit_price, total = excluded.total, status = 'pending', "
                "instance_id = excluded.instance_id, updated_at = CURRENT_TIMESTAMP "
                "WHERE orders.status = 'cancelled'"
            ).bind(order_id, sku, qty, unit_price, total, instance_id).run()
            if result.meta.changes != 1:
                raise NonRetryableError(f"order {order_id} is already recorded and not cancelled")
            return {"order_id": order_id, "total": total}

        await record()

        async def release_stock(rb):
            if rb.output is not None:
                returned = await inventory.release(order_id)
                print(f"rollback: {returned} x {sku} back in stock")

        @step.do("reserve stock", rollback=release_stock)
        async def reserve():
            result = await inventory.reserve(order_id, qty)
            if not result["ok"]:
                raise NonRetryableError(
                    f"only {result['on_hand']} x {sku} in stock, order {order_id} needs {qty}")
            return result

        await reserve()

        async def delete_invoice(rb):
            await env.INVOICES.delete(invoice_key(order_id))

        @step.do("store invoice", rollback=delete_invoice)
        async def invoice():
            body = json.dumps({"order_id": order_id, "sku": sku, "qty": qty,
                               "unit_price": unit_price, "total": total})
            stored = await env.INVOICES.put(
                invoice_key(order_id), body,
                httpMetadata={"contentType": "application/json"},
                customMetadata={"instance": instance_id})
            return {"key": stored.key, "etag": stored.etag, "size": stored.size}

        stored = await invoice()

        @step.do("charge card", config=NO_RETRY)
        async def charge():
            limit = int(env.CARD_LIMIT)
            if total > limit:
                raise NonRetryableError(f"card declined: {total} is over the limit of {limit}")
            return {"charge_id": f"ch_{instance_id}", "amount": total}

        charged = await charge()

        @step.do("confirm order")
        async def confirm():
            await env.DB.prepare(
                "UPDATE orders SET status = 'paid', updated_at = CURRENT_TIMESTAMP "
                "WHERE id = ? AND instance_id = ?").bind(order_id, instance_id).run()
            await env.ORDER_KEYS.put(key, json.dumps(
                {"instance": instance_id, "state": "confirmed", "invoice": stored["key"]}))
            return {"order_id": order_id, "status": "paid", "charge_id": charged["charge_id"],
                    "invoice": stored["key"]}

        return await confirm()


def error(message, status):
    return Response.json({"error": message}, status=status)


class Default(WorkerEntrypoint):
    """Restocks, starts checkouts and shows an order across the four stores."""

    async def fetch(self, request):
        parts = urlparse(request.url).path.strip("/").split("/")
        method = request.method
        if parts[0] == "inventory" and len(parts) == 2:
            stub = self.env.INVENTORY.get(self.env.INVENTORY.idFromName(parts[1]))
            if method == "POST":
                body = await request.json()
                return Response.json(await stub.restock(int(body["qty"])))
            return Response.json(await stub.level())
        if parts == ["orders"] and method == "POST":
            return await self.place(await request.json())
        if parts[0] == "orders" and len(parts) == 2 and method == "GET":
            return await self.show(parts[1])
        return error("try POST /inventory/<sku>, POST /orders or GET /orders/<id>", 404)

    async def place(self, order):
        missing = [f for f in ("order_id", "sku", "qty", "unit_price") if f not in order]
        if missing:
            return error(f"missing field(s): {', '.join(missing)}", 400)
        holder = await self.env.ORDER_KEYS.get(order_key(order["order_id"]), type="json")
        if holder is not None:  # idempotency: the same order is not placed twice
            return Response.json({"error": "order already placed", "id": holder["instance"],
                                  "state": holder["state"]}, status=409)
        instance = await self.env.CHECKOUT.create(params=order)
        return Response.json({"id": instance.id, "status": await instance.status()})

    async def show(self, order_id):
        row = await self.env.DB.prepare("SELECT * FROM orders WHERE id = ?").bind(
            order_id).first()
        if row is None:
            return error(f"no order {order_id}", 404)
        instance = await self.env.CHECKOUT.get(row["instance_id"])
        invoice = await self.env.INVOICES.head(invoice_key(order_id))
        return Response.json({
            "order": dict(row),
            "key": await self.env.ORDER_KEYS.get(order_key(order_id), type="json"),
            "invoice": None if invoice is None else {"key": invoice.key, "size": invoice.size},
            "instance": await instance.status(),
        })
