"""ContractService servicer (API listener, mutual TLS): requests to :class:`server.contracts.Contracts` calls.
Authorisation is the service's: another organisation's or another person's contract is NOT_FOUND."""

from __future__ import annotations

import hashlib
from datetime import UTC

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..contracts import Contracts, Summary
from ..identity import Principal
from ..seal.export import ExportedFile
from . import convert
from .auth import Authenticator
from .status import rpc


def summary(s: Summary) -> pb.ContractSummary:
    e = s.envelope
    return pb.ContractSummary(envelope_id=e.id, organisation_id=e.org_id, title=e.title,
                              completed_at=convert.ts(e.completed_at), sealed_at=convert.ts(s.sealed_at),
                              parties=s.parties, score=s.score)


def archived(f: ExportedFile) -> pb.ArchivedFile:
    return pb.ArchivedFile(name=f.name, kind=f.kind, sha256=f.sha256, size=f.size)


class ContractServicer(pb_grpc.ContractServiceServicer):
    def __init__(self, contracts: Contracts, auth: Authenticator) -> None:
        self.contracts = contracts
        self.auth = auth

    @rpc
    def SearchContracts(self, request: pb.SearchContractsRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.SearchContractsResponse:
        found = self.contracts.search(
            principal, request.query, party=request.party_person_id,
            completed_from=request.completed_from.ToDatetime(tzinfo=UTC)
            if request.HasField("completed_from") else None,
            completed_to=request.completed_to.ToDatetime(tzinfo=UTC)
            if request.HasField("completed_to") else None,
            order=request.order, page_size=request.page_size, page_token=request.page_token)
        return pb.SearchContractsResponse(contracts=[summary(s) for s in found.contracts], total=found.total,
                                          next_page_token=found.next_page_token)

    @rpc
    def GetContract(self, request: pb.GetContractRequest, principal: Principal,
                    context: grpc.ServicerContext) -> pb.GetContractResponse:
        s, files = self.contracts.get(principal, request.envelope_id)
        return pb.GetContractResponse(contract=summary(s), files=[archived(f) for f in files])

    @rpc
    def DownloadContract(self, request: pb.DownloadContractRequest, principal: Principal,
                         context: grpc.ServicerContext) -> pb.DownloadContractResponse:
        f, data = self.contracts.download(principal, request.envelope_id, request.name)
        return pb.DownloadContractResponse(file=archived(f), content=data)

    @rpc
    def ExportEvidence(self, request: pb.ExportEvidenceRequest, principal: Principal,
                       context: grpc.ServicerContext) -> pb.ExportEvidenceResponse:
        bundle = self.contracts.export_evidence(principal, request.envelope_id)
        return pb.ExportEvidenceResponse(bundle=bundle.data, sha256=hashlib.sha256(bundle.data).hexdigest())
