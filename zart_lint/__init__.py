"""zart-lint: static checks for zart durable functions.

The headline rule, ZRT001, finds a step called inside a loop under a name that
does not change per iteration: iterations 2..n would silently receive the
stored result of iteration 1.

The package is laid out as the pipeline runs (see docs/linter.md, "Internals"):
``core`` (shared values) < ``project`` (config, files, project index) <
``analysis`` (one file, libcst) < ``fix`` < ``rules`` < ``engine`` (checking
files) < ``output`` (formats) < ``cli``.
"""

from zart_lint.core._finding import Edit, Finding, Fix
from zart_lint.core._version import __version__

__all__ = ["Edit", "Finding", "Fix", "__version__"]
