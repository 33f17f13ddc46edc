# The command-line tools.  A package so that tools-side modules
# (tools/_common/) import as ``tools._common.*`` from any script once the
# repository root is on ``sys.path``.
