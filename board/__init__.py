"""The board: a server-rendered view of the ranked book, each account's evidence, plays and
charts, and the program's scoreboard, behind an admin token (`expansion board`)."""

from board.app import create_app

__all__ = ["create_app"]
