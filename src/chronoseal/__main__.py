"""``python -m chronoseal``: the same CLI as the ``chronoseal`` script."""

from chronoseal.cli import main

main()
