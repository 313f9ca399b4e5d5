"""Process entry points (faces): `python -m workbench._entry.<name>` programs that the faces start.

They build a `Workbench` and so live outside the core, which never imports the facade.
"""
