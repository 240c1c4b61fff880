"""The bindings a Worker's ``env`` holds besides workflows and vars, on the state directory.

``config`` parses the wrangler tables, ``layout`` says where each store lives; one module per
binding type implements its Python Workers API surface.
"""
