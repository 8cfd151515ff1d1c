"""``python -m mlxtune`` is the ``mlxtune`` command."""

from mlxtune.cli import main

raise SystemExit(main())
