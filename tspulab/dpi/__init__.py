"""Pure DPI core: parsing, flow state, registry and policy. No root, no Mininet, no os-ken."""

from tspulab.dpi import compiled as _compiled

# Before any submodule is imported: a compiled module is used only while its .py is unchanged.
_compiled.install()
