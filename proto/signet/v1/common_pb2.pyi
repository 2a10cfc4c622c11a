from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ALGORITHM_UNSPECIFIED: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_RSA_2048: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_RSA_3072: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_RSA_4096: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_EC_P256: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_EC_P384: _ClassVar[KeyAlgorithm]
KEY_ALGORITHM_UNSPECIFIED: KeyAlgorithm
KEY_ALGORITHM_RSA_2048: KeyAlgorithm
KEY_ALGORITHM_RSA_3072: KeyAlgorithm
KEY_ALGORITHM_RSA_4096: KeyAlgorithm
KEY_ALGORITHM_EC_P256: KeyAlgorithm
KEY_ALGORITHM_EC_P384: KeyAlgorithm

class Token(_message.Message):
    __slots__ = ("slot_id", "label", "serial", "manufacturer", "model", "flags")
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    slot_id: int
    label: str
    serial: str
    manufacturer: str
    model: str
    flags: TokenFlags
    def __init__(self, slot_id: _Optional[int] = ..., label: _Optional[str] = ..., serial: _Optional[str] = ..., manufacturer: _Optional[str] = ..., model: _Optional[str] = ..., flags: _Optional[_Union[TokenFlags, _Mapping]] = ...) -> None: ...

class TokenFlags(_message.Message):
    __slots__ = ("login_required", "initialized", "user_pin_initialized", "pin_count_low", "pin_final_try", "pin_locked", "protected_authentication_path", "write_protected")
    LOGIN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    USER_PIN_INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    PIN_COUNT_LOW_FIELD_NUMBER: _ClassVar[int]
    PIN_FINAL_TRY_FIELD_NUMBER: _ClassVar[int]
    PIN_LOCKED_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_AUTHENTICATION_PATH_FIELD_NUMBER: _ClassVar[int]
    WRITE_PROTECTED_FIELD_NUMBER: _ClassVar[int]
    login_required: bool
    initialized: bool
    user_pin_initialized: bool
    pin_count_low: bool
    pin_final_try: bool
    pin_locked: bool
    protected_authentication_path: bool
    write_protected: bool
    def __init__(self, login_required: _Optional[bool] = ..., initialized: _Optional[bool] = ..., user_pin_initialized: _Optional[bool] = ..., pin_count_low: _Optional[bool] = ..., pin_final_try: _Optional[bool] = ..., pin_locked: _Optional[bool] = ..., protected_authentication_path: _Optional[bool] = ..., write_protected: _Optional[bool] = ...) -> None: ...

class Key(_message.Message):
    __slots__ = ("token_serial", "key_id", "label", "algorithm", "certificate_der", "certificate_subject", "public_key_der")
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_DER_FIELD_NUMBER: _ClassVar[int]
    token_serial: str
    key_id: str
    label: str
    algorithm: KeyAlgorithm
    certificate_der: bytes
    certificate_subject: str
    public_key_der: bytes
    def __init__(self, token_serial: _Optional[str] = ..., key_id: _Optional[str] = ..., label: _Optional[str] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., certificate_der: _Optional[bytes] = ..., certificate_subject: _Optional[str] = ..., public_key_der: _Optional[bytes] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("reason", "pin_tries_left", "token_serial", "key_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    PIN_TRIES_LEFT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    pin_tries_left: int
    token_serial: str
    key_id: str
    def __init__(self, reason: _Optional[str] = ..., pin_tries_left: _Optional[int] = ..., token_serial: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...
