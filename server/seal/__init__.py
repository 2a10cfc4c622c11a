"""The platform seal: what the server adds to a completed contract so that it stays verifiable for the long term.

:mod:`.pdf` turns a PDF carrying the parties' signatures into PAdES B-LTA (validation data of every signature in
a DSS, the platform's seal signature, an RFC 3161 document timestamp); :mod:`.cms` countersigns the parties'
detached CAdES signatures of any other file (RFC 5652 countersignature + a signature timestamp).
"""
