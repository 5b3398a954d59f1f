"""``python -m azml_chat.cli``: the same as the ``azml-chat`` command."""

import sys

from . import main

sys.exit(main())
