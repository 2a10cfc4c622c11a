from signet.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignatureScheme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_SCHEME_UNSPECIFIED: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_RSA_PKCS1V15: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_RSA_PSS: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_ECDSA: _ClassVar[SignatureScheme]

class HashAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HASH_ALGORITHM_UNSPECIFIED: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_SHA256: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_SHA384: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_SHA512: _ClassVar[HashAlgorithm]

class PadesLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PADES_LEVEL_UNSPECIFIED: _ClassVar[PadesLevel]
    PADES_LEVEL_B_B: _ClassVar[PadesLevel]
    PADES_LEVEL_B_T: _ClassVar[PadesLevel]
SIGNATURE_SCHEME_UNSPECIFIED: SignatureScheme
SIGNATURE_SCHEME_RSA_PKCS1V15: SignatureScheme
SIGNATURE_SCHEME_RSA_PSS: SignatureScheme
SIGNATURE_SCHEME_ECDSA: SignatureScheme
HASH_ALGORITHM_UNSPECIFIED: HashAlgorithm
HASH_ALGORITHM_SHA256: HashAlgorithm
HASH_ALGORITHM_SHA384: HashAlgorithm
HASH_ALGORITHM_SHA512: HashAlgorithm
PADES_LEVEL_UNSPECIFIED: PadesLevel
PADES_LEVEL_B_B: PadesLevel
PADES_LEVEL_B_T: PadesLevel

class TokenSelector(_message.Message):
    __slots__ = ("serial", "label")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    serial: str
    label: str
    def __init__(self, serial: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class PinCredential(_message.Message):
    __slots__ = ("pin",)
    PIN_FIELD_NUMBER: _ClassVar[int]
    pin: str
    def __init__(self, pin: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("agent_version", "pkcs11_module", "caller", "max_message_bytes", "max_document_bytes", "unlock_max_seconds", "unlock_max_signatures", "max_inline_bytes")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PKCS11_MODULE_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_MAX_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    MAX_INLINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    pkcs11_module: str
    caller: str
    max_message_bytes: int
    max_document_bytes: int
    unlock_max_seconds: int
    unlock_max_signatures: int
    max_inline_bytes: int
    def __init__(self, agent_version: _Optional[str] = ..., pkcs11_module: _Optional[str] = ..., caller: _Optional[str] = ..., max_message_bytes: _Optional[int] = ..., max_document_bytes: _Optional[int] = ..., unlock_max_seconds: _Optional[int] = ..., unlock_max_signatures: _Optional[int] = ..., max_inline_bytes: _Optional[int] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens", "unlocked_serials")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    UNLOCKED_SERIALS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.Token]
    unlocked_serials: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_common_pb2.Token, _Mapping]]] = ..., unlocked_serials: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchTokensResponse(_message.Message):
    __slots__ = ("kind", "token")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[WatchTokensResponse.Kind]
        KIND_INSERTED: _ClassVar[WatchTokensResponse.Kind]
        KIND_REMOVED: _ClassVar[WatchTokensResponse.Kind]
    KIND_UNSPECIFIED: WatchTokensResponse.Kind
    KIND_INSERTED: WatchTokensResponse.Kind
    KIND_REMOVED: WatchTokensResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: WatchTokensResponse.Kind
    token: _common_pb2.Token
    def __init__(self, kind: _Optional[_Union[WatchTokensResponse.Kind, str]] = ..., token: _Optional[_Union[_common_pb2.Token, _Mapping]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("token", "credential")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[_common_pb2.Key]
    def __init__(self, keys: _Optional[_Iterable[_Union[_common_pb2.Key, _Mapping]]] = ...) -> None: ...

class GenerateKeyRequest(_message.Message):
    __slots__ = ("token", "algorithm", "label", "credential")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    algorithm: _common_pb2.KeyAlgorithm
    label: str
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., algorithm: _Optional[_Union[_common_pb2.KeyAlgorithm, str]] = ..., label: _Optional[str] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class GenerateKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: _common_pb2.Key
    def __init__(self, key: _Optional[_Union[_common_pb2.Key, _Mapping]] = ...) -> None: ...

class CreateCertificateRequestRequest(_message.Message):
    __slots__ = ("token", "key_id", "subject", "dns_names", "emails", "credential")
    class SubjectEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    subject: _containers.ScalarMap[str, str]
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    emails: _containers.RepeatedScalarFieldContainer[str]
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., subject: _Optional[_Mapping[str, str]] = ..., dns_names: _Optional[_Iterable[str]] = ..., emails: _Optional[_Iterable[str]] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class CreateCertificateRequestResponse(_message.Message):
    __slots__ = ("csr_der",)
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    csr_der: bytes
    def __init__(self, csr_der: _Optional[bytes] = ...) -> None: ...

class ImportCertificateRequest(_message.Message):
    __slots__ = ("token", "key_id", "certificate_der", "chain_der", "credential")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    certificate_der: bytes
    chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., certificate_der: _Optional[bytes] = ..., chain_der: _Optional[_Iterable[bytes]] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class ImportCertificateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteKeyRequest(_message.Message):
    __slots__ = ("token", "key_id", "credential")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class DeleteKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnlockRequest(_message.Message):
    __slots__ = ("token", "pin", "ttl_seconds", "max_signatures")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    pin: str
    ttl_seconds: int
    max_signatures: int
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., pin: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., max_signatures: _Optional[int] = ...) -> None: ...

class UnlockResponse(_message.Message):
    __slots__ = ("token_serial", "expires_at", "signatures_left")
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_LEFT_FIELD_NUMBER: _ClassVar[int]
    token_serial: str
    expires_at: int
    signatures_left: int
    def __init__(self, token_serial: _Optional[str] = ..., expires_at: _Optional[int] = ..., signatures_left: _Optional[int] = ...) -> None: ...

class LockRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ...) -> None: ...

class LockResponse(_message.Message):
    __slots__ = ("logged_out",)
    LOGGED_OUT_FIELD_NUMBER: _ClassVar[int]
    logged_out: bool
    def __init__(self, logged_out: _Optional[bool] = ...) -> None: ...

class SignDigestRequest(_message.Message):
    __slots__ = ("token", "key_id", "digest", "hash", "scheme", "credential")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    digest: bytes
    hash: HashAlgorithm
    scheme: SignatureScheme
    credential: PinCredential
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., digest: _Optional[bytes] = ..., hash: _Optional[_Union[HashAlgorithm, str]] = ..., scheme: _Optional[_Union[SignatureScheme, str]] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ...) -> None: ...

class SignDigestResponse(_message.Message):
    __slots__ = ("signature", "token_serial")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    token_serial: str
    def __init__(self, signature: _Optional[bytes] = ..., token_serial: _Optional[str] = ...) -> None: ...

class SignDigestStreamRequest(_message.Message):
    __slots__ = ("token", "key_id", "hash", "scheme", "credential", "digests", "request_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    hash: HashAlgorithm
    scheme: SignatureScheme
    credential: PinCredential
    digests: _containers.RepeatedScalarFieldContainer[bytes]
    request_id: int
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., hash: _Optional[_Union[HashAlgorithm, str]] = ..., scheme: _Optional[_Union[SignatureScheme, str]] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ..., digests: _Optional[_Iterable[bytes]] = ..., request_id: _Optional[int] = ...) -> None: ...

class SignDigestStreamResponse(_message.Message):
    __slots__ = ("request_id", "signatures")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, request_id: _Optional[int] = ..., signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Appearance(_message.Message):
    __slots__ = ("page", "x1", "y1", "x2", "y2")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    page: int
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, page: _Optional[int] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class SignPdfHeader(_message.Message):
    __slots__ = ("token", "key_id", "credential", "size", "field_name", "reason", "location", "contact_info", "appearance", "level", "timestamp_url", "file_name", "document", "inline_result")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_INFO_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    INLINE_RESULT_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    credential: PinCredential
    size: int
    field_name: str
    reason: str
    location: str
    contact_info: str
    appearance: Appearance
    level: PadesLevel
    timestamp_url: str
    file_name: str
    document: bytes
    inline_result: bool
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ..., size: _Optional[int] = ..., field_name: _Optional[str] = ..., reason: _Optional[str] = ..., location: _Optional[str] = ..., contact_info: _Optional[str] = ..., appearance: _Optional[_Union[Appearance, _Mapping]] = ..., level: _Optional[_Union[PadesLevel, str]] = ..., timestamp_url: _Optional[str] = ..., file_name: _Optional[str] = ..., document: _Optional[bytes] = ..., inline_result: _Optional[bool] = ...) -> None: ...

class SignPdfRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SignPdfHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SignPdfHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SignResult(_message.Message):
    __slots__ = ("token_serial", "key_id", "document_sha256", "output_sha256", "output_size", "field_name", "signer_subject", "content")
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    token_serial: str
    key_id: str
    document_sha256: str
    output_sha256: str
    output_size: int
    field_name: str
    signer_subject: str
    content: bytes
    def __init__(self, token_serial: _Optional[str] = ..., key_id: _Optional[str] = ..., document_sha256: _Optional[str] = ..., output_sha256: _Optional[str] = ..., output_size: _Optional[int] = ..., field_name: _Optional[str] = ..., signer_subject: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SignPdfResponse(_message.Message):
    __slots__ = ("chunk", "result")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    result: SignResult
    def __init__(self, chunk: _Optional[bytes] = ..., result: _Optional[_Union[SignResult, _Mapping]] = ...) -> None: ...

class SignDetachedHeader(_message.Message):
    __slots__ = ("token", "key_id", "credential", "size", "timestamp_url", "file_name", "document", "inline_result")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    INLINE_RESULT_FIELD_NUMBER: _ClassVar[int]
    token: TokenSelector
    key_id: str
    credential: PinCredential
    size: int
    timestamp_url: str
    file_name: str
    document: bytes
    inline_result: bool
    def __init__(self, token: _Optional[_Union[TokenSelector, _Mapping]] = ..., key_id: _Optional[str] = ..., credential: _Optional[_Union[PinCredential, _Mapping]] = ..., size: _Optional[int] = ..., timestamp_url: _Optional[str] = ..., file_name: _Optional[str] = ..., document: _Optional[bytes] = ..., inline_result: _Optional[bool] = ...) -> None: ...

class SignDetachedRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SignDetachedHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SignDetachedHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SignDetachedResponse(_message.Message):
    __slots__ = ("chunk", "result")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    result: SignResult
    def __init__(self, chunk: _Optional[bytes] = ..., result: _Optional[_Union[SignResult, _Mapping]] = ...) -> None: ...

class VerifyPdfHeader(_message.Message):
    __slots__ = ("size", "trust_roots_der")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TRUST_ROOTS_DER_FIELD_NUMBER: _ClassVar[int]
    size: int
    trust_roots_der: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, size: _Optional[int] = ..., trust_roots_der: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyPdfRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: VerifyPdfHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[VerifyPdfHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class VerifyDetachedHeader(_message.Message):
    __slots__ = ("size", "signature_der", "trust_roots_der")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_DER_FIELD_NUMBER: _ClassVar[int]
    TRUST_ROOTS_DER_FIELD_NUMBER: _ClassVar[int]
    size: int
    signature_der: bytes
    trust_roots_der: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, size: _Optional[int] = ..., signature_der: _Optional[bytes] = ..., trust_roots_der: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyDetachedRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: VerifyDetachedHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[VerifyDetachedHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SignatureReport(_message.Message):
    __slots__ = ("field_name", "signer_subject", "certificate_chain", "intact", "trusted", "coverage", "modification_level", "signing_time", "timestamp_time", "valid", "problems")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    MODIFICATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SIGNING_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TIME_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    signer_subject: str
    certificate_chain: _containers.RepeatedScalarFieldContainer[str]
    intact: bool
    trusted: bool
    coverage: str
    modification_level: str
    signing_time: str
    timestamp_time: str
    valid: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, field_name: _Optional[str] = ..., signer_subject: _Optional[str] = ..., certificate_chain: _Optional[_Iterable[str]] = ..., intact: _Optional[bool] = ..., trusted: _Optional[bool] = ..., coverage: _Optional[str] = ..., modification_level: _Optional[str] = ..., signing_time: _Optional[str] = ..., timestamp_time: _Optional[str] = ..., valid: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("valid", "signatures", "report_json", "document_sha256")
    VALID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureReport]
    report_json: str
    document_sha256: str
    def __init__(self, valid: _Optional[bool] = ..., signatures: _Optional[_Iterable[_Union[SignatureReport, _Mapping]]] = ..., report_json: _Optional[str] = ..., document_sha256: _Optional[str] = ...) -> None: ...
