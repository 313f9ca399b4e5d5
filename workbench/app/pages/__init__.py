"""One module per dashboard page; each exposes a `param.Parameterized` page with `__panel__`."""
