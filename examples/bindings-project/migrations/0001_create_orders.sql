-- Migration number: 0001    the orders the checkout saga records
CREATE TABLE orders (
    id TEXT PRIMARY KEY,              -- the client's order id (also the KV idempotency key)
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    unit_price INTEGER NOT NULL,      -- cents
    total INTEGER NOT NULL,           -- cents
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled')),
    instance_id TEXT NOT NULL,        -- the checkout instance that owns the row
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_orders_status ON orders(status);
