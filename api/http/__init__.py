"""The HTTP face: the FastAPI app, its routes, problem documents, limits and OpenAPI."""
