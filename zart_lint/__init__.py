"""zart-lint: static checks for zart durable functions.

The headline rule, ZRT001, finds a step called inside a loop under a name that
does not change per iteration: iterations 2..n would silently receive the
stored result of iteration 1.
"""

from zart_lint._finding import Edit, Finding, Fix

__all__ = ["Edit", "Finding", "Fix", "__version__"]

__version__ = "0.1.0"
