"""os-ken (Ryu API) apps: the TSPU middlebox and a plain learning switch. Installed as tspulab.controllers."""
