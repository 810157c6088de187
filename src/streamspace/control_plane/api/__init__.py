"""The HTTP edge: one router per resource, its schemas, dependencies and error mapping."""
