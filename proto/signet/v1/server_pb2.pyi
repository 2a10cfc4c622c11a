import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PersonStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSON_STATUS_UNSPECIFIED: _ClassVar[PersonStatus]
    PERSON_STATUS_PENDING: _ClassVar[PersonStatus]
    PERSON_STATUS_APPROVED: _ClassVar[PersonStatus]
    PERSON_STATUS_REJECTED: _ClassVar[PersonStatus]

class CertificateState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_STATE_UNSPECIFIED: _ClassVar[CertificateState]
    CERTIFICATE_STATE_GOOD: _ClassVar[CertificateState]
    CERTIFICATE_STATE_REVOKED: _ClassVar[CertificateState]
PERSON_STATUS_UNSPECIFIED: PersonStatus
PERSON_STATUS_PENDING: PersonStatus
PERSON_STATUS_APPROVED: PersonStatus
PERSON_STATUS_REJECTED: PersonStatus
CERTIFICATE_STATE_UNSPECIFIED: CertificateState
CERTIFICATE_STATE_GOOD: CertificateState
CERTIFICATE_STATE_REVOKED: CertificateState

class Person(_message.Message):
    __slots__ = ("id", "organisation_id", "legal_name", "document_type", "document_country", "phone", "email", "status", "phone_verified_at", "decided_at", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHONE_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organisation_id: str
    legal_name: str
    document_type: str
    document_country: str
    phone: str
    email: str
    status: PersonStatus
    phone_verified_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organisation_id: _Optional[str] = ..., legal_name: _Optional[str] = ..., document_type: _Optional[str] = ..., document_country: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., status: _Optional[_Union[PersonStatus, str]] = ..., phone_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterPersonRequest(_message.Message):
    __slots__ = ("legal_name", "document_type", "document_number", "document_country", "phone", "email")
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    legal_name: str
    document_type: str
    document_number: str
    document_country: str
    phone: str
    email: str
    def __init__(self, legal_name: _Optional[str] = ..., document_type: _Optional[str] = ..., document_number: _Optional[str] = ..., document_country: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class RegisterPersonResponse(_message.Message):
    __slots__ = ("person",)
    PERSON_FIELD_NUMBER: _ClassVar[int]
    person: Person
    def __init__(self, person: _Optional[_Union[Person, _Mapping]] = ...) -> None: ...

class GetPersonRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class GetPersonResponse(_message.Message):
    __slots__ = ("person",)
    PERSON_FIELD_NUMBER: _ClassVar[int]
    person: Person
    def __init__(self, person: _Optional[_Union[Person, _Mapping]] = ...) -> None: ...

class ListPeopleRequest(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: PersonStatus
    def __init__(self, status: _Optional[_Union[PersonStatus, str]] = ...) -> None: ...

class ListPeopleResponse(_message.Message):
    __slots__ = ("people",)
    PEOPLE_FIELD_NUMBER: _ClassVar[int]
    people: _containers.RepeatedCompositeFieldContainer[Person]
    def __init__(self, people: _Optional[_Iterable[_Union[Person, _Mapping]]] = ...) -> None: ...

class CodeChallenge(_message.Message):
    __slots__ = ("code_id", "expires_at", "channel")
    CODE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    code_id: str
    expires_at: _timestamp_pb2.Timestamp
    channel: str
    def __init__(self, code_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[str] = ...) -> None: ...

class StartPhoneVerificationRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class StartPhoneVerificationResponse(_message.Message):
    __slots__ = ("challenge",)
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    challenge: CodeChallenge
    def __init__(self, challenge: _Optional[_Union[CodeChallenge, _Mapping]] = ...) -> None: ...

class ConfirmPhoneRequest(_message.Message):
    __slots__ = ("person_id", "code", "code_id")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    code: str
    code_id: str
    def __init__(self, person_id: _Optional[str] = ..., code: _Optional[str] = ..., code_id: _Optional[str] = ...) -> None: ...

class ConfirmPhoneResponse(_message.Message):
    __slots__ = ("person",)
    PERSON_FIELD_NUMBER: _ClassVar[int]
    person: Person
    def __init__(self, person: _Optional[_Union[Person, _Mapping]] = ...) -> None: ...

class ApprovePersonRequest(_message.Message):
    __slots__ = ("person_id", "evidence", "reference")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    evidence: str
    reference: str
    def __init__(self, person_id: _Optional[str] = ..., evidence: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class ApprovePersonResponse(_message.Message):
    __slots__ = ("person",)
    PERSON_FIELD_NUMBER: _ClassVar[int]
    person: Person
    def __init__(self, person: _Optional[_Union[Person, _Mapping]] = ...) -> None: ...

class RejectPersonRequest(_message.Message):
    __slots__ = ("person_id", "reason", "reference")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    reason: str
    reference: str
    def __init__(self, person_id: _Optional[str] = ..., reason: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class RejectPersonResponse(_message.Message):
    __slots__ = ("person",)
    PERSON_FIELD_NUMBER: _ClassVar[int]
    person: Person
    def __init__(self, person: _Optional[_Union[Person, _Mapping]] = ...) -> None: ...

class ListEvidenceRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class EvidenceRecord(_message.Message):
    __slots__ = ("seq", "kind", "at", "actor", "provider", "reference", "detail_json", "digest")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    at: _timestamp_pb2.Timestamp
    actor: str
    provider: str
    reference: str
    detail_json: str
    digest: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., provider: _Optional[str] = ..., reference: _Optional[str] = ..., detail_json: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class ListEvidenceResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[EvidenceRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[EvidenceRecord, _Mapping]]] = ...) -> None: ...

class StartEnrollmentRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class StartEnrollmentResponse(_message.Message):
    __slots__ = ("challenge",)
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    challenge: CodeChallenge
    def __init__(self, challenge: _Optional[_Union[CodeChallenge, _Mapping]] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("person_id", "one_time_code", "code_id", "csr_der", "agent_tls_csr_der")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    AGENT_TLS_CSR_DER_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    one_time_code: str
    code_id: str
    csr_der: bytes
    agent_tls_csr_der: bytes
    def __init__(self, person_id: _Optional[str] = ..., one_time_code: _Optional[str] = ..., code_id: _Optional[str] = ..., csr_der: _Optional[bytes] = ..., agent_tls_csr_der: _Optional[bytes] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate_der", "chain_der", "agent_certificate_der", "serial", "root_der")
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    AGENT_CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ROOT_DER_FIELD_NUMBER: _ClassVar[int]
    certificate_der: bytes
    chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    agent_certificate_der: bytes
    serial: str
    root_der: bytes
    def __init__(self, certificate_der: _Optional[bytes] = ..., chain_der: _Optional[_Iterable[bytes]] = ..., agent_certificate_der: _Optional[bytes] = ..., serial: _Optional[str] = ..., root_der: _Optional[bytes] = ...) -> None: ...

class CertificateInfo(_message.Message):
    __slots__ = ("serial", "origin", "subject", "person_id", "state", "revocation_reason", "revoked_at", "not_before", "not_after", "certificate_der")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    serial: str
    origin: str
    subject: str
    person_id: str
    state: CertificateState
    revocation_reason: str
    revoked_at: _timestamp_pb2.Timestamp
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    certificate_der: bytes
    def __init__(self, serial: _Optional[str] = ..., origin: _Optional[str] = ..., subject: _Optional[str] = ..., person_id: _Optional[str] = ..., state: _Optional[_Union[CertificateState, str]] = ..., revocation_reason: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_der: _Optional[bytes] = ...) -> None: ...

class RevokeCertificateRequest(_message.Message):
    __slots__ = ("serial", "reason")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial: str
    reason: str
    def __init__(self, serial: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeCertificateResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: CertificateInfo
    def __init__(self, certificate: _Optional[_Union[CertificateInfo, _Mapping]] = ...) -> None: ...

class GetCertificateStatusRequest(_message.Message):
    __slots__ = ("serial",)
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    serial: str
    def __init__(self, serial: _Optional[str] = ...) -> None: ...

class GetCertificateStatusResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: CertificateInfo
    def __init__(self, certificate: _Optional[_Union[CertificateInfo, _Mapping]] = ...) -> None: ...

class ListCertificatesRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class ListCertificatesResponse(_message.Message):
    __slots__ = ("certificates",)
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[CertificateInfo]
    def __init__(self, certificates: _Optional[_Iterable[_Union[CertificateInfo, _Mapping]]] = ...) -> None: ...

class RegisterExternalCertificateRequest(_message.Message):
    __slots__ = ("person_id", "certificate_der", "intermediates_der")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATES_DER_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    certificate_der: bytes
    intermediates_der: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, person_id: _Optional[str] = ..., certificate_der: _Optional[bytes] = ..., intermediates_der: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RegisterExternalCertificateResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: CertificateInfo
    def __init__(self, certificate: _Optional[_Union[CertificateInfo, _Mapping]] = ...) -> None: ...
