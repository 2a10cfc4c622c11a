"""Kiosk mode: signet-agent as a signing station (``[kiosk] enabled = true``).

A full-screen page on 127.0.0.1 (:mod:`.web`) leads the holder of the card inserted in the station through the
documents waiting for them: insert the card, enter its PIN (the card signs a statement for this station, the
server's proof that the card is here and unlocked), pick a document, review its rendered pages and SHA-256, ask for
the one-time code (sent to the holder's phone, bound to that revision), enter it with the card's PIN, sign, remove
the card.  The station reaches signet-server with its own station certificate and a card session for the card's
certificate and that proof (:mod:`.station`); the proof and the new revision are made on the card by this agent,
through its own socket, like any signature (:mod:`.state`).  Removing the card or leaving the station idle ends the
session at once (:mod:`.state`); the pages carry no script, and nothing of the person survives the session.
"""

from __future__ import annotations

from .web import KioskServer, start

__all__ = ["KioskServer", "start"]
