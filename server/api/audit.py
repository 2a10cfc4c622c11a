"""AuditService servicer (API listener, mutual TLS): requests to :class:`server.audit.service.AuditQueries` calls.
Authorisation is the queries': operators only; a leaf or envelope of another organisation is NOT_FOUND."""

from __future__ import annotations

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..audit.log import TreeHead
from ..audit.service import AuditQueries, Leaf
from ..identity import Principal
from .auth import Authenticator
from .status import rpc


def tree_head(h: TreeHead | None) -> pb.TreeHead | None:
    if h is None:
        return None
    return pb.TreeHead(tree_size=h.tree_size, root_hash=h.root_hash, timestamp=h.timestamp, signature=h.signature,
                       hash_name=h.hash_name, key_id=h.key_id, spki_sha256=h.spki_sha256)


def audit_leaf(x: Leaf) -> pb.AuditLeaf:
    return pb.AuditLeaf(seq=x.seq, time=x.time, kind=x.kind, subject=x.subject, payload_json=x.payload_json,
                        leaf_hash=x.leaf_hash)


class AuditServicer(pb_grpc.AuditServiceServicer):
    def __init__(self, queries: AuditQueries, auth: Authenticator) -> None:
        self.queries = queries
        self.auth = auth

    @rpc
    def GetTreeHead(self, request: pb.GetTreeHeadRequest, principal: Principal,
                    context: grpc.ServicerContext) -> pb.GetTreeHeadResponse:
        signed = self.queries.tree_head(principal, request.tree_size)
        return pb.GetTreeHeadResponse(head=tree_head(signed.head), audit_certificate_der=signed.certificate_der,
                                      chain_der=list(signed.chain_der))

    @rpc
    def GetInclusionProof(self, request: pb.GetInclusionProofRequest, principal: Principal,
                          context: grpc.ServicerContext) -> pb.GetInclusionProofResponse:
        found = self.queries.inclusion(principal, request.seq, request.tree_size)
        return pb.GetInclusionProofResponse(leaf=audit_leaf(found.leaf), tree_size=found.tree_size,
                                            proof=found.proof, head=tree_head(found.head))

    @rpc
    def GetConsistencyProof(self, request: pb.GetConsistencyProofRequest, principal: Principal,
                            context: grpc.ServicerContext) -> pb.GetConsistencyProofResponse:
        found = self.queries.consistency(principal, request.old_size, request.new_size)
        return pb.GetConsistencyProofResponse(old_size=found.old_size, new_size=found.new_size, proof=found.proof,
                                              old_head=tree_head(found.old_head), new_head=tree_head(found.new_head))

    @rpc
    def ListEnvelopeLeaves(self, request: pb.ListEnvelopeLeavesRequest, principal: Principal,
                           context: grpc.ServicerContext) -> pb.ListEnvelopeLeavesResponse:
        found = self.queries.envelope_leaves(principal, request.envelope_id, request.tree_size)
        return pb.ListEnvelopeLeavesResponse(
            leaves=[pb.EnvelopeLeaf(leaf=audit_leaf(leaf), proof=proof) for leaf, proof in found.leaves],
            tree_size=found.tree_size, head=tree_head(found.head))
