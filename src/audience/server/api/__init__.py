"""The API's routes, one module per noun; each calls the workspace and returns its JSON."""
