"""The compiled DPI modules: Cython compiles the listed ``.py`` files of tspulab/dpi as they are.

Everything else about the package is in pyproject.toml. The list of modules and the import hook
that decides between an extension and its ``.py`` are in tspulab/dpi/compiled.py; the measured
gain is in docs/dpi.md ("Compiled modules").

A missing compiler, missing Python headers or a module Cython refuses never fails the install:
that module stays pure Python (the specification, only slower) and the build says so. The build
records each compiled source's SHA-256 and its extension's size in tspulab/dpi/_compiled.json, so
an extension older than its source is never imported (tspulab/dpi/compiled.py).
Rebuild in place after editing a listed module: ``make build``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _load_compiled() -> ModuleType:
    """tspulab/dpi/compiled.py, loaded by path: the package is not installed yet."""
    spec = importlib.util.spec_from_file_location(
        "_tspulab_compiled", HERE / "tspulab" / "dpi" / "compiled.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


compiled = _load_compiled()

# Python semantics kept exactly: annotations are not C types (a `float` argument stays a Python
# object, a `bytes` one accepts what CPython accepts), binding functions behave like Python ones.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


def _warn(message: str) -> None:
    print(f"tspulab build: WARNING: {message}", file=sys.stderr)


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed: the DPI modules stay pure Python (slower, same verdicts)")
        return []
    out = []
    for module in compiled.COMPILED:
        source = compiled.source_path(module).relative_to(HERE)
        ext = Extension(module, [str(source)], extra_compile_args=["-g0"], optional=True)
        try:
            (built,) = cythonize(
                [ext], build_dir="build/cython", compiler_directives=DIRECTIVES, quiet=True
            )
        except Exception as err:  # any Cython failure leaves that module pure
            _warn(f"Cython could not compile {source} ({err}): it stays pure Python")
            continue
        built.tspulab_source_sha256 = compiled.source_sha256(HERE / source)
        out.append(built)
    return out


class BuildExt(build_ext):
    """Builds what it can in parallel, then records what it built (tspulab/dpi/_compiled.json)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.tspulab_failed: list[str] = []
        super().run()
        self._write_manifest()

    def copy_file(
        self, infile: str, outfile: str, *args: object, **kwargs: object
    ) -> tuple[str, bool]:
        """In place (``--inplace``, editable installs): the new extension is written beside the
        old one and renamed over it. Copying into the old file would rewrite a shared library
        that running processes (labs, controllers, tests in the same tree) have mapped."""
        target = Path(outfile)
        if not (self.inplace or getattr(self, "editable_mode", False)) or target.suffix != ".so":
            return super().copy_file(infile, outfile, *args, **kwargs)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        result = super().copy_file(infile, str(partial), *args, **kwargs)
        os.replace(partial, target)
        return (str(target), result[1])

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:  # no compiler or headers: that module stays pure
            _warn(f"could not build {ext.name} ({err}): it stays pure Python")
            self.tspulab_failed.append(ext.name)

    def _write_manifest(self) -> None:
        modules = {}
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))  # in the source tree when --inplace
            if ext.name in self.tspulab_failed or not path.exists():
                continue
            modules[ext.name] = {
                "extension": path.name,
                "size": path.stat().st_size,
                "source_sha256": ext.tspulab_source_sha256,
            }
        if not self.extensions:
            return
        where = Path(self.get_ext_fullpath("tspulab.dpi.fastpath")).parent / compiled.MANIFEST
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(json.dumps({"modules": modules}, indent=1, sort_keys=True) + "\n")
        missing = len(compiled.COMPILED) - len(modules)
        if missing:
            _warn(f"{missing} of {len(compiled.COMPILED)} DPI modules stay pure Python (see above)")


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
