"""Pure DPI core: parsing, flow state, registry and policy. No root, no Mininet, no os-ken."""
