"""The portal: recipients open the link of their notice in a browser, review the documents and sign remotely
(:mod:`.web`, :mod:`.links`)."""

from .links import Link, LinkNotFound, PortalLinks
from .web import PortalHttpServer

__all__ = ["Link", "LinkNotFound", "PortalHttpServer", "PortalLinks"]
