"""Passwords (always) and id tags (OYE_MASK_ID_TAGS) masked in what is published."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oye_relay.masking import (
    MASK,
    MAX_DEPTH,
    mask_tag,
    masked_frame,
    may_hold_secret,
    url_without_password,
)
from oye_shared.frames import parse_frame

pytestmark = pytest.mark.unit


def masked(text: str, *, id_tags: bool = True) -> Any:
    return json.loads(masked_frame(parse_frame(text), text, id_tags=id_tags))


def test_16_tags_are_masked_at_any_depth() -> None:
    assert masked('[2,"1","Authorize",{"idTag":"04A2B3C4D5"}]') == [
        2,
        "1",
        "Authorize",
        {"idTag": "****D5"},
    ]
    answer = masked('[3,"1",{"idTagInfo":{"status":"Accepted","parentIdTag":"GROUP-77"}}]')
    assert answer == [3, "1", {"idTagInfo": {"status": "Accepted", "parentIdTag": "****77"}}]


def test_201_tokens_are_masked_and_their_type_kept() -> None:
    text = (
        '[2,"1","TransactionEvent",{"eventType":"Started","idToken":'
        '{"idToken":"DEADBEEF","type":"ISO14443"},"groupIdToken":{"idToken":"G1","type":"Central"}}]'
    )
    payload = masked(text)[3]
    assert payload["idToken"] == {"idToken": "****EF", "type": "ISO14443"}
    assert payload["groupIdToken"] == {"idToken": "****", "type": "Central"}


def test_frames_without_tags_are_published_byte_for_byte() -> None:
    text = '[2, "1", "Heartbeat", {}]'
    assert masked_frame(parse_frame(text), text, id_tags=True) is text
    error = '[4,"1","GenericError","idTag bad",{"idTag":"X"}]'
    assert masked_frame(parse_frame(error), error, id_tags=True) is error


def test_short_tags_leave_nothing() -> None:
    assert mask_tag("1234") == "****"


def test_id_tags_are_kept_without_the_setting() -> None:
    text = '[2,"1","Authorize",{"idTag":"04A2B3C4D5"}]'
    assert masked_frame(parse_frame(text), text) is text


# Passwords: masked whatever OYE_MASK_ID_TAGS says.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # 1.6: the CSMS sets the charger's Basic auth password (CiString: any case)
            '[2,"1","ChangeConfiguration",{"key":"authorizationKey","value":"s3cret-s3cret-01"}]',
            [2, "1", "ChangeConfiguration", {"key": "authorizationKey", "value": MASK}],
        ),
        (  # 1.6: a charger that reports it after all
            '[3,"1",{"configurationKey":[{"key":"AuthorizationKey","readonly":false,'
            '"value":"s3cret-s3cret-01"},{"key":"HeartbeatInterval","readonly":false,'
            '"value":"300"}]}]',
            [
                3,
                "1",
                {
                    "configurationKey": [
                        {"key": "AuthorizationKey", "readonly": False, "value": MASK},
                        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                    ]
                },
            ],
        ),
        (  # 2.0.1: SetVariables (GetVariables' results have the same shape)
            '[2,"1","SetVariables",{"setVariableData":[{"attributeValue":"s3cret-s3cret-01",'
            '"component":{"name":"SecurityCtrlr"},"variable":{"name":"BasicAuthPassword"}},'
            '{"attributeValue":"60","component":{"name":"OCPPCommCtrlr"},'
            '"variable":{"name":"RetryBackOffWaitMinimum"}}]}]',
            [
                2,
                "1",
                "SetVariables",
                {
                    "setVariableData": [
                        {
                            "attributeValue": MASK,
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                        },
                        {
                            "attributeValue": "60",
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "RetryBackOffWaitMinimum"},
                        },
                    ]
                },
            ],
        ),
        (  # 2.0.1: NotifyReport keeps the attribute's type and mutability
            '[2,"1","NotifyReport",{"requestId":1,"generatedAt":"2026-01-01T00:00:00Z",'
            '"seqNo":0,"reportData":[{"component":{"name":"SecurityCtrlr"},'
            '"variable":{"name":"BasicAuthPassword"},"variableAttribute":'
            '[{"type":"Actual","value":"s3cret-s3cret-01","mutability":"WriteOnly"}]}]}]',
            [
                2,
                "1",
                "NotifyReport",
                {
                    "requestId": 1,
                    "generatedAt": "2026-01-01T00:00:00Z",
                    "seqNo": 0,
                    "reportData": [
                        {
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                            "variableAttribute": [
                                {"type": "Actual", "value": MASK, "mutability": "WriteOnly"}
                            ],
                        }
                    ],
                },
            ],
        ),
        (  # 2.0.1: SetNetworkProfile's APN password, VPN password and VPN key
            '[2,"1","SetNetworkProfile",{"configurationSlot":1,"connectionData":{'
            '"apn":{"apn":"internet","apnUserName":"u","apnPassword":"apn-s3cret",'
            '"apnAuthentication":"AUTO"},"vpn":{"server":"vpn.example","user":"u",'
            '"password":"vpn-s3cret","key":"vpn-k3y","type":"IPSec"}}}]',
            [
                2,
                "1",
                "SetNetworkProfile",
                {
                    "configurationSlot": 1,
                    "connectionData": {
                        "apn": {
                            "apn": "internet",
                            "apnUserName": "u",
                            "apnPassword": MASK,
                            "apnAuthentication": "AUTO",
                        },
                        "vpn": {
                            "server": "vpn.example",
                            "user": "u",
                            "password": MASK,
                            "key": MASK,
                            "type": "IPSec",
                        },
                    },
                },
            ],
        ),
        (  # a vendor's DataTransfer: any field named like a password, whole
            '[2,"1","DataTransfer",{"vendorId":"V","data":{"wifi":{"Password":{"a":[1,"x"]},'
            '"passwordRequired":true}}}]',
            [
                2,
                "1",
                "DataTransfer",
                {
                    "vendorId": "V",
                    "data": {"wifi": {"Password": {"a": [MASK, MASK]}, "passwordRequired": True}},
                },
            ],
        ),
        (  # an upload URL with credentials: the user stays, the password goes
            '[2,"1","GetDiagnostics",{"location":"ftp://diag:ftp-s3cret@files.example/up/"}]',
            [2, "1", "GetDiagnostics", {"location": f"ftp://diag:{MASK}@files.example/up/"}],
        ),
    ],
)
def test_passwords_are_masked_without_the_id_tag_setting(text: str, expected: Any) -> None:
    assert may_hold_secret(text.encode())
    assert masked(text, id_tags=False) == expected
    assert "s3cret" not in json.dumps(masked(text, id_tags=False))


def test_a_password_spelled_with_json_escapes_is_found_too() -> None:
    text = '[2,"1","ChangeConfiguration",{"key":"Authorization\\u004bey","value":"s3cret"}]'
    assert may_hold_secret(text.encode())
    assert masked(text, id_tags=False)[3] == {"key": "AuthorizationKey", "value": MASK}


def test_other_configuration_and_urls_without_passwords_are_published_byte_for_byte() -> None:
    for text in (
        '[2,"1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"300"}]',
        '[2,"1","UpdateFirmware",{"location":"https://user@fw.example/f.bin",'
        '"retrieveDate":"2026-01-01T00:00:00Z"}]',
        '[3,"1",{"status":"Accepted"}]',
    ):
        assert masked_frame(parse_frame(text), text, id_tags=True) is text
    assert not may_hold_secret(b'[2,"1","Heartbeat",{}]')


def test_a_frame_nested_deeper_than_any_ocpp_message_is_masked_not_a_crash() -> None:
    depth = 900  # json.loads takes it; a recursive walk to the bottom would not
    text = '[2,"1","DataTransfer",{"data":' + "[" * depth + '"\\u0041"' + "]" * depth + "}]"
    nested = masked(text, id_tags=False)[3]["data"]
    for _ in range(MAX_DEPTH - 1):
        nested = nested[0]
    assert nested == MASK


def test_a_urls_password_is_masked_for_the_log_and_the_rest_kept() -> None:
    assert url_without_password("wss://cp:s3cret@csms.example:443/ocpp") == (
        f"wss://cp:{MASK}@csms.example:443/ocpp"
    )
    assert url_without_password("wss://csms.example/ocpp?a=b@c") == "wss://csms.example/ocpp?a=b@c"


def test_masking_a_long_hostile_string_takes_linear_time() -> None:
    """No backtracking blow-up: a megabyte of letters before '://' and '@' (a peer's frame
    may be 8 MiB, and the relay masks on its event loop)."""
    text = json.dumps([2, "1", "DataTransfer", {"data": "a" * 1_000_000 + "@://x:y"}])
    assert masked(text, id_tags=False)[3]["data"].endswith("@://x:y")
