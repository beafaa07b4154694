"""os-ken (Ryu API) apps: the TSPU middlebox and a learning switch (as tspulab.controllers)."""
