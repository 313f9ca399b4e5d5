"""`panel serve workbench/app/dashboard.py`: the same dashboard under Panel's own server.

`workbench serve` is the usual way (it adds the prefix handling and the reconnect script's route);
this module lets Panel's CLI (and tools built on it) run the pages too: `?page=jobs` and so on.
"""

from workbench.app.server import create_dashboard

create_dashboard()().servable()
