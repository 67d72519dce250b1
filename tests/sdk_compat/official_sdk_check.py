#!/usr/bin/env python3
"""Drive alicloud-emulator with Alibaba Cloud's official Python SDKs.

Proves that the emulator accepts requests signed exactly as the official SDK
runtime (alibabacloud_tea_openapi) signs them and that its responses parse
into the SDK's response models with the documented field names and types.

Usage (flags win over the environment):

    official_sdk_check.py --url http://127.0.0.1:PORT \
        --access-key-id AK --access-key-secret SECRET \
        --rds-instance rm-xxx [--region cn-hangzhou] [--styles v3,v2]

    env: ALICLOUD_EMULATOR_URL, ALICLOUD_ACCESS_KEY_ID,
         ALICLOUD_ACCESS_KEY_SECRET, ALICLOUD_RDS_INSTANCE, ALICLOUD_REGION

The emulator must run with short delays (the Rust test uses
--configure-delay-ms 200, --instance-busy-ms 200 and --precheck-ms 500, passing
the first and the last to this script); the script waits for them by
polling/sleeping, never by relying on defaults.

Signing styles (alibabacloud_tea_openapi Client.call_api):
  v3  Config.signature_algorithm unset -> Client.do_request, V3
      `ACS3-HMAC-SHA256` Authorization header (the SDK default)
  v2  Config.signature_algorithm = "v2" -> Client.do_rpcrequest, V2
      HMAC-SHA1 `Signature` query parameter
Each style runs the whole suite with fresh plans / endpoints.

Prints one line per call and exits 1 on the first failed check (2 on bad
usage). Only the throwaway test account's AccessKeyId is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import inspect
import json
import os
import re
import sys
import time
import traceback
import typing
import urllib.request
import uuid

from alibabacloud_dbs20190306 import models as dbs_models
from alibabacloud_dbs20190306.client import Client as DbsClient
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client as RdsClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from darabonba.core import DaraCore
from darabonba.model import DaraModel
from darabonba.runtime import RuntimeOptions

STYLES = {
    # name -> (description, Config.signature_algorithm, what the wire must show)
    "v3": ("V3 ACS3-HMAC-SHA256 (SDK default)", None, "ACS3-HMAC-SHA256"),
    "v2": ("V2 HMAC-SHA1 (signature_algorithm='v2')", "v2", "V2 HMAC-SHA1"),
}

class CheckFailed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


# --------------------------------------------------------------------------- #
# Response capture and model type checks
# --------------------------------------------------------------------------- #


class Capture:
    """Keeps the raw JSON body of the client's last call.

    Wraps the runtime's two transport methods on the instance: do_request
    (V3, reached through call_api) and do_rpcrequest (V2, and what the STS
    SDK calls directly for the anonymous AssumeRoleWithOIDC).
    """

    def __init__(self, client: OpenApiClient):
        self.last_raw: typing.Any = None
        for name in ("do_request", "do_rpcrequest"):
            setattr(client, name, self._wrap(getattr(client, name)))

    def _wrap(self, inner):
        def wrapper(*args, **kwargs):
            self.last_raw = None
            res = inner(*args, **kwargs)
            self.last_raw = res.get("body") if isinstance(res, dict) else None
            return res

        return wrapper


class Wire:
    """Records how every request the SDK sends is signed.

    Wraps darabonba's DaraCore.do_action (the single HTTP send used by both
    do_request and do_rpcrequest), so the test can prove which signing style
    the SDK really used on the wire.
    """

    def __init__(self):
        self.requests: list[dict] = []
        inner = DaraCore.do_action

        def do_action(request, runtime_option=None):
            headers = {k.lower(): v for k, v in (request.headers or {}).items()}
            query = dict(request.query or {})
            auth = headers.get("authorization", "")
            if auth:
                kind = auth.split(" ", 1)[0]
            elif "Signature" in query:
                kind = f"V2 {query.get('SignatureMethod')}"
            else:
                kind = "anonymous"
            self.requests.append({
                "action": headers.get("x-acs-action") or query.get("Action"),
                "kind": kind,
                "signed_headers": auth.split("SignedHeaders=", 1)[1].split(",", 1)[0] if auth else "",
                "security_token": bool(headers.get("x-acs-security-token") or query.get("SecurityToken")),
                "form_body": bool(request.body)
                and headers.get("content-type") == "application/x-www-form-urlencoded",
            })
            return inner(request, runtime_option)

        DaraCore.do_action = staticmethod(do_action)

    def take(self) -> list[dict]:
        out, self.requests = self.requests, []
        return out


WIRE = Wire()


@functools.cache
def _wire_names(cls: type) -> frozenset[str]:
    """Every JSON key the generated model reads (`m.get('Key')` in from_map)."""
    return frozenset(re.findall(r"m\.get\('([^']+)'\)", inspect.getsource(cls.from_map)))


def _resolved_hints(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls.__init__)


def _type_ok(value: typing.Any, hint: typing.Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        return isinstance(value, list)
    if origin in (dict, typing.Dict):
        return isinstance(value, dict)
    if hint is typing.Any:
        return True
    if isinstance(hint, type) and issubclass(hint, DaraModel):
        return isinstance(value, hint)
    return True  # unknown annotation: nothing to check


def check_model(model: DaraModel, raw: typing.Any, path: str) -> list[str]:
    """Compare a parsed SDK model with the raw JSON it was parsed from.

    Returns problems: a field whose JSON type does not match the model's
    annotation, or a JSON key the model does not know.
    """
    problems: list[str] = []
    if not isinstance(raw, dict):
        return [f"{path}: expected a JSON object, got {type(raw).__name__}"]
    known = _wire_names(type(model))
    for key in raw:
        # An unknown name is most likely a misspelt documented field.
        if key not in known:
            problems.append(f"{path}.{key}: not a field of SDK model {type(model).__name__}")
    hints = _resolved_hints(type(model))
    for attr, hint in hints.items():
        value = getattr(model, attr, None)
        if value is None:
            continue
        if not _type_ok(value, hint):
            problems.append(
                f"{path}.{attr}: SDK model says {getattr(hint, '__name__', hint)}, "
                f"got {type(value).__name__} {value!r}"
            )
            continue
        # find the raw sub-object for nested models
        if isinstance(value, DaraModel) or (
            isinstance(value, list) and value and isinstance(value[0], DaraModel)
        ):
            wire = _wire_key(model, attr)
            sub_raw = raw.get(wire) if wire else None
            if isinstance(value, DaraModel):
                problems += check_model(value, sub_raw, f"{path}.{wire}")
            else:
                item_hint = typing.get_args(hint)[0] if typing.get_args(hint) else None
                for i, (item, item_raw) in enumerate(zip(value, sub_raw or [])):
                    if item_hint is not None and not _type_ok(item, item_hint):
                        problems.append(f"{path}.{wire}[{i}]: wrong item type")
                    elif isinstance(item, DaraModel):
                        problems += check_model(item, item_raw, f"{path}.{wire}[{i}]")
        elif isinstance(value, list):
            args = typing.get_args(hint)
            if args:
                for i, item in enumerate(value):
                    if not _type_ok(item, args[0]):
                        problems.append(
                            f"{path}.{attr}[{i}]: SDK model says {args[0]}, got {type(item).__name__}"
                        )
    return problems


def _wire_key(model: DaraModel, attr: str) -> str | None:
    """The JSON key the model maps attribute `attr` to (via to_map)."""
    original = getattr(model, attr)
    try:
        setattr(model, attr, None)
        without = model.to_map()
    finally:
        setattr(model, attr, original)
    with_ = model.to_map()
    diff = [k for k in with_ if k not in without or with_[k] != without[k]]
    return diff[0] if len(diff) == 1 else None


class Runner:
    def __init__(self, style: str):
        self.style = style
        self.calls = 0

    def call(self, label: str, fn, capture: Capture | None = None, dbs: bool = False):
        """Run one SDK call, print a line, type-check the body, return the body."""
        t0 = time.monotonic()
        try:
            resp = fn()
        except Exception as e:  # noqa: BLE001 - report any SDK error
            ms = (time.monotonic() - t0) * 1000
            print(f"[{self.style}] FAIL {label} ({ms:.0f} ms): {type(e).__name__}: "
                  f"code={getattr(e, 'code', None)} {getattr(e, 'message', e)}", flush=True)
            raise CheckFailed(f"{label} raised {type(e).__name__}") from e
        ms = (time.monotonic() - t0) * 1000
        self.calls += 1
        body = resp.body
        check(getattr(resp, "status_code", None) == 200,
              f"{label}: HTTP status {getattr(resp, 'status_code', None)}")
        if dbs:
            # DBS quirk: business errors are HTTP 200 with Success:false.
            if body.success is not True:
                print(f"[{self.style}] FAIL {label}: Success={body.success!r} "
                      f"ErrCode={body.err_code!r} ErrMessage={body.err_message!r}", flush=True)
                raise CheckFailed(f"{label}: Success is not true")
        if capture is not None:
            problems = check_model(body, capture.last_raw, type(body).__name__)
            if problems:
                for p in problems:
                    print(f"[{self.style}] FAIL {label}: {p}", flush=True)
                raise CheckFailed(f"{label}: response does not match the SDK model")
        print(f"[{self.style}] ok   {label} ({ms:.0f} ms) request_id={body.request_id}", flush=True)
        return body

    def expect_error(self, label: str, fn, codes: set[str]):
        t0 = time.monotonic()
        try:
            resp = fn()
        except Exception as e:  # noqa: BLE001
            ms = (time.monotonic() - t0) * 1000
            code = getattr(e, "code", None)
            if code in codes:
                status = getattr(e, "status_code", None)
                print(f"[{self.style}] ok   {label} ({ms:.0f} ms) -> {type(e).__name__} "
                      f"code={code} http={status}", flush=True)
                self.calls += 1
                return e
            print(f"[{self.style}] FAIL {label}: expected {sorted(codes)}, got "
                  f"{type(e).__name__} code={code}: {getattr(e, 'message', e)}", flush=True)
            raise CheckFailed(f"{label}: wrong error") from e
        print(f"[{self.style}] FAIL {label}: expected {sorted(codes)}, call succeeded: "
              f"{getattr(resp, 'body', resp)}", flush=True)
        raise CheckFailed(f"{label}: no error")


# --------------------------------------------------------------------------- #
# Clients
# --------------------------------------------------------------------------- #


def make_config(args, style: str, ak: str | None, secret: str | None,
                token: str | None = None) -> open_api_models.Config:
    cfg = open_api_models.Config(
        access_key_id=ak,
        access_key_secret=secret,
        security_token=token,
        endpoint=args.endpoint,
        protocol="http",
        region_id=args.region,
        read_timeout=10000,
        connect_timeout=5000,
    )
    algo = STYLES[style][1]
    if algo is not None:
        cfg.signature_algorithm = algo
    return cfg


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def fake_jwt() -> str:
    def b64(obj) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "sdk-compat"}
    payload = {
        "iss": "https://oidc.sdk-compat.example",
        "sub": "system:serviceaccount:default:sdk-compat",
        "aud": "sts.aliyuncs.com",
        "iat": now,
        "exp": now + 3600,
    }
    return f"{b64(header)}.{b64(payload)}.{base64.urlsafe_b64encode(b'not-a-signature').rstrip(b'=').decode()}"


# --------------------------------------------------------------------------- #
# Suites
# --------------------------------------------------------------------------- #


def dbs_suite(args, r: Runner, style: str) -> None:
    client = DbsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    cap = Capture(client)
    rt = RuntimeOptions()
    token = unique("sdk-compat-")

    create_req = dbs_models.CreateBackupPlanRequest(
        region=args.region,
        instance_class="small",
        database_type="MySQL",
        backup_method="logical",
        pay_type="postpay",
        database_region=args.region,
        storage_region=args.region,
        instance_type="RDS",
        client_token=token,
    )
    created_at = time.monotonic()
    body = r.call("DBS CreateBackupPlan", lambda: client.create_backup_plan_with_options(create_req, rt),
                  cap, dbs=True)
    plan_id = body.backup_plan_id
    check(isinstance(plan_id, str) and plan_id, "CreateBackupPlan: BackupPlanId missing")
    check(isinstance(body.order_id, str) and body.order_id, "CreateBackupPlan: OrderId missing")
    body2 = r.call("DBS CreateBackupPlan (same ClientToken)",
                   lambda: client.create_backup_plan_with_options(create_req, rt), cap, dbs=True)
    check(body2.backup_plan_id == plan_id, "ClientToken: a second plan was created")

    # The emulator's configure delay (200 ms in the test) after Create.
    wait = args.configure_delay_s - (time.monotonic() - created_at)
    if wait > 0:
        time.sleep(wait)

    # Characters that V2 and V3 percent-encode differently from form/URL encoding
    # (space, "*", "~", "/", "+", non-ASCII) exercise both canonicalisations.
    name = unique("sdk plan ~*/+é-")
    body = r.call("DBS ConfigureBackupPlan", lambda: client.configure_backup_plan_with_options(
        dbs_models.ConfigureBackupPlanRequest(
            backup_plan_id=plan_id,
            backup_plan_name=name,
            source_endpoint_instance_type="RDS",
            source_endpoint_region=args.region,
            source_endpoint_instance_id=args.rds_instance,
            source_endpoint_user_name="backup",
            source_endpoint_password="Sdk-compat-1",
            backup_objects=json.dumps([{"DBName": "app"}]),
            backup_period="Monday,Thursday",
            backup_start_time="02:00",
            backup_strategy_type="simple",
            backup_retention_period=30,
            enable_backup_log=False,
        ), rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "ConfigureBackupPlan: BackupPlanId")

    body = r.call("DBS StartBackupPlan", lambda: client.start_backup_plan_with_options(
        dbs_models.StartBackupPlanRequest(backup_plan_id=plan_id), rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "StartBackupPlan: BackupPlanId")

    def describe():
        return client.describe_backup_plan_list_with_options(
            dbs_models.DescribeBackupPlanListRequest(
                backup_plan_id=plan_id, region=args.region, page_num=0, page_size=10), rt)

    # StartBackupPlan begins an asynchronous precheck: wait for `running`.
    wait_for_plan_status(args, r, "DBS DescribeBackupPlanList (precheck)", describe, cap, "running")
    body = r.call("DBS DescribeBackupPlanList", describe, cap, dbs=True)
    check(body.total_elements == 1, f"DescribeBackupPlanList: TotalElements {body.total_elements!r}")
    check(body.items is not None and len(body.items.backup_plan_detail) == 1,
          "DescribeBackupPlanList: Items.BackupPlanDetail must hold the plan")
    plan = body.items.backup_plan_detail[0]
    check(plan.backup_plan_id == plan_id, "plan id")
    check(plan.backup_plan_name == name, f"plan name {plan.backup_plan_name!r}")
    check(plan.backup_plan_status == "running", f"BackupPlanStatus {plan.backup_plan_status!r}")
    check(plan.source_endpoint_instance_id == args.rds_instance,
          f"SourceEndpointInstanceID {plan.source_endpoint_instance_id!r}")
    check((plan.source_endpoint_instance_type or "").lower() == "rds",
          f"SourceEndpointInstanceType {plan.source_endpoint_instance_type!r}")
    check((plan.backup_period or "").upper() == "MONDAY,THURSDAY", f"BackupPeriod {plan.backup_period!r}")
    check((plan.backup_start_time or "").startswith("02:00"), f"BackupStartTime {plan.backup_start_time!r}")
    # DBS re-serialises BackupObjects (key order, empty table lists): compare the meaning.
    check([{k: v for k, v in o.items() if v != []} for o in json.loads(plan.backup_objects)]
          == [{"DBName": "app"}], f"BackupObjects {plan.backup_objects!r}")
    check(isinstance(plan.backup_plan_create_time, int), "BackupPlanCreateTime must be an integer")
    check(plan.backup_retention_period == 30, f"BackupRetentionPeriod {plan.backup_retention_period!r}")
    check(plan.database_type == "MySQL", f"DatabaseType {plan.database_type!r}")

    # Generic call (OpenApiRequest with form body): the SDK's way of sending
    # parameters in an application/x-www-form-urlencoded body.
    def generic_describe():
        params = open_api_models.Params(
            action="DescribeBackupPlanList", version="2019-03-06", protocol="HTTP",
            pathname="/", method="POST", auth_type="AK", style="RPC",
            req_body_type="formData", body_type="json")
        req = open_api_models.OpenApiRequest(
            query={"Region": args.region},
            body={"BackupPlanId": plan_id, "BackupPlanName": name, "PageSize": 5})
        raw = client.call_api(params, req, rt)
        return dbs_models.DescribeBackupPlanListResponse().from_map(raw)

    body = r.call("DBS DescribeBackupPlanList (generic call, form body)", generic_describe, cap, dbs=True)
    check(body.total_elements == 1 and body.items.backup_plan_detail[0].backup_plan_id == plan_id,
          "generic DescribeBackupPlanList: form-body BackupPlanId/BackupPlanName filters not applied")
    check(body.page_size == 5, f"generic DescribeBackupPlanList: PageSize {body.page_size!r}")

    body = r.call("DBS ModifyBackupStrategy", lambda: client.modify_backup_strategy_with_options(
        dbs_models.ModifyBackupStrategyRequest(
            backup_plan_id=plan_id, backup_period="Tuesday", backup_start_time="03:30",
            backup_strategy_type="simple"), rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "ModifyBackupStrategy: BackupPlanId")
    check(body.need_precheck is False, f"ModifyBackupStrategy: NeedPrecheck {body.need_precheck!r}")
    body = r.call("DBS DescribeBackupPlanList (after modify)", describe, cap, dbs=True)
    plan = body.items.backup_plan_detail[0]
    check((plan.backup_period or "").upper() == "TUESDAY", f"BackupPeriod after modify {plan.backup_period!r}")
    check((plan.backup_start_time or "").startswith("03:30"), f"BackupStartTime after modify {plan.backup_start_time!r}")

    body = r.call("DBS StopBackupPlan", lambda: client.stop_backup_plan_with_options(
        dbs_models.StopBackupPlanRequest(backup_plan_id=plan_id, stop_method="ALL"), rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "StopBackupPlan: BackupPlanId")

    body = r.call("DBS ReleaseBackupPlan", lambda: client.release_backup_plan_with_options(
        dbs_models.ReleaseBackupPlanRequest(backup_plan_id=plan_id), rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "ReleaseBackupPlan: BackupPlanId")


def set_dbs_errors(args, mode: str) -> None:
    """Switch the emulator's DBS error transport (admin API, unsigned JSON)."""
    req = urllib.request.Request(
        f"{args.url.rstrip('/')}/_emulator/settings",
        data=json.dumps({"dbsErrors": mode}).encode(),
        headers={"content-type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        check(resp.status == 200, f"PUT /_emulator/settings dbsErrors={mode}: HTTP {resp.status}")


def dbs_error_transport_suite(args, r: Runner, style: str) -> None:
    """DBS business errors as the SDK sees them: by default a 4xx status, which the runtime
    raises as ClientException (what Terraform catches for InvalidJobId); in the emulator's
    success-false mode an HTTP 200 body with Success=false, which the SDK returns as a success."""
    client = DbsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    cap = Capture(client)
    rt = RuntimeOptions()
    missing = "dbs-sdk-compat-missing"

    for label, call in [
        ("DBS DescribeBackupPlanBilling of an unknown plan",
         lambda: client.describe_backup_plan_billing_with_options(
             dbs_models.DescribeBackupPlanBillingRequest(backup_plan_id=missing), rt)),
        ("DBS ReleaseBackupPlan of an unknown plan",
         lambda: client.release_backup_plan_with_options(
             dbs_models.ReleaseBackupPlanRequest(backup_plan_id=missing), rt)),
    ]:
        e = r.expect_error(label, call, {"InvalidJobId"})
        check(type(e).__name__ == "ClientException", f"{label}: raised {type(e).__name__}")
        check(getattr(e, "status_code", None) == 404, f"{label}: HTTP {getattr(e, 'status_code', None)}")
        data = getattr(e, "data", None) or {}
        check(data.get("Success") is False and data.get("ErrCode") == "InvalidJobId"
              and data.get("HttpStatusCode") == 404,
              f"{label}: the error body lacks the DBS fields: {data}")

    set_dbs_errors(args, "success-false")
    try:
        t0 = time.monotonic()
        resp = client.release_backup_plan_with_options(
            dbs_models.ReleaseBackupPlanRequest(backup_plan_id=missing), rt)
        check(resp.status_code == 200 and resp.body.success is False
              and resp.body.err_code == "InvalidJobId",
              f"success-false mode: {resp.status_code} {resp.body.success!r} {resp.body.err_code!r}")
        problems = check_model(resp.body, cap.last_raw, type(resp.body).__name__)
        check(not problems, f"business-error body vs model: {problems}")
        r.calls += 1
        print(f"[{style}] ok   DBS ReleaseBackupPlan of an unknown plan, success-false mode "
              f"({(time.monotonic() - t0) * 1000:.0f} ms) -> HTTP 200 Success=false "
              f"ErrCode=InvalidJobId", flush=True)
    finally:
        set_dbs_errors(args, "http-status")


def rds_suite(args, r: Runner, style: str) -> None:
    client = RdsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    cap = Capture(client)
    rt = RuntimeOptions()
    inst = args.rds_instance

    def attribute():
        return client.describe_dbinstance_attribute_with_options(
            rds_models.DescribeDBInstanceAttributeRequest(dbinstance_id=inst), rt)

    def wait_running(label: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            body = r.call(f"RDS DescribeDBInstanceAttribute ({label})", attribute, cap)
            attrs = body.items.dbinstance_attribute
            check(len(attrs) == 1, "DescribeDBInstanceAttribute: one Items.DBInstanceAttribute")
            check(attrs[0].dbinstance_id == inst, f"DBInstanceId {attrs[0].dbinstance_id!r}")
            if attrs[0].dbinstance_status == "Running":
                return
            check(time.monotonic() < deadline, f"instance still {attrs[0].dbinstance_status!r} after 30 s")
            time.sleep(0.1)

    wait_running("before allocate")
    prefix = unique("sdk" + style)
    body = r.call("RDS AllocateInstancePublicConnection",
                  lambda: client.allocate_instance_public_connection_with_options(
                      rds_models.AllocateInstancePublicConnectionRequest(
                          dbinstance_id=inst, connection_string_prefix=prefix, port="3306"), rt), cap)
    public = body.connection_string
    check(isinstance(public, str) and public.startswith(prefix + "."),
          f"AllocateInstancePublicConnection: ConnectionString {public!r}")

    def net_info():
        return client.describe_dbinstance_net_info_with_options(
            rds_models.DescribeDBInstanceNetInfoRequest(dbinstance_id=inst), rt)

    body = r.call("RDS DescribeDBInstanceNetInfo", net_info, cap)
    infos = body.dbinstance_net_infos.dbinstance_net_info
    pub = [i for i in infos if i.connection_string == public]
    check(len(pub) == 1, f"public endpoint {public} not listed: {[i.connection_string for i in infos]}")
    check(pub[0].iptype == "Public", f"IPType {pub[0].iptype!r}")
    check(int(pub[0].port) == 3306, f"Port {pub[0].port!r}")
    check(body.instance_network_type in ("VPC", "Classic"), f"InstanceNetworkType {body.instance_network_type!r}")

    body = r.call("RDS DescribeDBInstanceAttribute", attribute, cap)
    check(body.items.dbinstance_attribute[0].dbinstance_net_type == "Internet",
          f"DBInstanceNetType {body.items.dbinstance_attribute[0].dbinstance_net_type!r}")
    network_type = body.items.dbinstance_attribute[0].instance_network_type

    wait_running("wait for Running")
    new_prefix = unique("sdk" + style + "new")
    r.call("RDS ModifyDBInstanceConnectionString",
           lambda: client.modify_dbinstance_connection_string_with_options(
               rds_models.ModifyDBInstanceConnectionStringRequest(
                   dbinstance_id=inst, current_connection_string=public,
                   connection_string_prefix=new_prefix, port="3307"), rt), cap)
    body = r.call("RDS DescribeDBInstanceNetInfo (after modify)", net_info, cap)
    pub = [i for i in body.dbinstance_net_infos.dbinstance_net_info if i.iptype == "Public"]
    check(len(pub) == 1 and pub[0].connection_string.startswith(new_prefix + ".") and int(pub[0].port) == 3307,
          f"after modify: {[(i.connection_string, i.port) for i in pub]}")
    public = pub[0].connection_string

    wait_running("before release")
    r.call("RDS ReleaseInstanceConnection", lambda: client.release_instance_connection_with_options(
        rds_models.ReleaseInstanceConnectionRequest(
            dbinstance_id=inst, current_connection_string=public,
            instance_network_type="0" if network_type == "VPC" else "1"), rt), cap)
    body = r.call("RDS DescribeDBInstanceNetInfo (after release)", net_info, cap)
    check(all(i.iptype != "Public" for i in body.dbinstance_net_infos.dbinstance_net_info),
          "public endpoint still listed after release")
    # Leave the instance Running for the next style.
    wait_running("after release")


def sts_suite(args, r: Runner, style: str) -> None:
    # Anonymous client: no AccessKey at all, as for AssumeRoleWithOIDC in a pod.
    sts = StsClient(make_config(args, style, None, None))
    cap = Capture(sts)
    rt = RuntimeOptions()
    uid = "1234567890123456"
    body = r.call("STS AssumeRoleWithOIDC (anonymous)", lambda: sts.assume_role_with_oidcwith_options(
        sts_models.AssumeRoleWithOIDCRequest(
            role_arn=f"acs:ram::{uid}:role/sdk-compat",
            oidcprovider_arn=f"acs:ram::{uid}:oidc-provider/sdk-compat",
            oidctoken=fake_jwt(),
            role_session_name=f"sdk-compat-{style}",
            duration_seconds=900), rt), cap)
    creds = body.credentials
    check(creds is not None and creds.access_key_id.startswith("STS."), "Credentials.AccessKeyId")
    check(bool(creds.access_key_secret) and bool(creds.security_token), "Credentials secret/token")
    check(isinstance(creds.expiration, str) and creds.expiration.endswith("Z"),
          f"Credentials.Expiration {creds.expiration!r}")
    check(body.assumed_role_user is not None and body.assumed_role_user.arn.startswith(
        f"acs:ram::{uid}:assumed-role/sdk-compat/"), "AssumedRoleUser.Arn")
    check(body.oidctoken_info is not None and body.oidctoken_info.subject ==
          "system:serviceaccount:default:sdk-compat", "OIDCTokenInfo.Subject")

    dbs = DbsClient(make_config(args, style, creds.access_key_id, creds.access_key_secret,
                                creds.security_token))
    dcap = Capture(dbs)
    body = r.call("DBS DescribeBackupPlanList (STS credentials + security token)",
                  lambda: dbs.describe_backup_plan_list_with_options(
                      dbs_models.DescribeBackupPlanListRequest(region=args.region), rt), dcap, dbs=True)
    check(isinstance(body.total_elements, int), "TotalElements must be an integer")

    # Same STS key with a tampered token must be refused.
    bad = DbsClient(make_config(args, style, creds.access_key_id, creds.access_key_secret,
                                creds.security_token + "x"))
    r.expect_error("DBS call with a wrong security token",
                   lambda: bad.describe_backup_plan_list_with_options(
                       dbs_models.DescribeBackupPlanListRequest(region=args.region), rt),
                   {"InvalidSecurityToken.Mismatch"})


def negative_suite(args, r: Runner, style: str) -> None:
    rt = RuntimeOptions()
    req = dbs_models.DescribeBackupPlanListRequest(region=args.region)
    wrong = DbsClient(make_config(args, style, args.access_key_id, args.access_key_secret + "-wrong"))
    e = r.expect_error("DBS call with a wrong secret", lambda: wrong.describe_backup_plan_list_with_options(req, rt),
                       {"SignatureDoesNotMatch"})
    check(getattr(e, "status_code", 0) >= 400, "wrong secret: HTTP status must be 4xx")
    unknown = DbsClient(make_config(args, style, "sdk-compat-unknown-key", "whatever"))
    r.expect_error("DBS call with an unknown AccessKeyId",
                   lambda: unknown.describe_backup_plan_list_with_options(req, rt),
                   {"InvalidAccessKeyId.NotFound"})
    rds_wrong = RdsClient(make_config(args, style, args.access_key_id, args.access_key_secret + "-wrong"))
    r.expect_error("RDS call with a wrong secret", lambda: rds_wrong.describe_dbinstance_net_info_with_options(
        rds_models.DescribeDBInstanceNetInfoRequest(dbinstance_id=args.rds_instance), rt),
        {"SignatureDoesNotMatch"})
    rds = RdsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    r.expect_error("RDS DescribeDBInstanceNetInfo on an unknown instance",
                   lambda: rds.describe_dbinstance_net_info_with_options(
                       rds_models.DescribeDBInstanceNetInfoRequest(dbinstance_id="rm-sdk-compat-missing"), rt),
                   {"InvalidDBInstanceId.NotFound"})


# --------------------------------------------------------------------------- #
# Precheck and ClientToken (issue 10): DBS errors may come back as an SDK exception (HTTP 4xx)
# or as HTTP 200 with Success:false; both carry the code.
# --------------------------------------------------------------------------- #


def _error_codes(e: Exception) -> set:
    codes = {getattr(e, "code", None)}
    data = getattr(e, "data", None)
    if isinstance(data, dict):
        codes |= {data.get("Code"), data.get("ErrCode")}
    return codes - {None}


def expect_dbs_error(r: Runner, label: str, fn, code: str, capture: Capture | None = None) -> None:
    """The call fails with DBS error `code`, as an SDK exception or as a `Success:false` body."""
    t0 = time.monotonic()
    try:
        resp = fn()
    except Exception as e:  # noqa: BLE001 - any SDK error carrying the code
        ms = (time.monotonic() - t0) * 1000
        if code not in _error_codes(e):
            print(f"[{r.style}] FAIL {label}: expected {code}, got {type(e).__name__} "
                  f"codes={sorted(_error_codes(e))}: {getattr(e, 'message', e)}", flush=True)
            raise CheckFailed(f"{label}: wrong error") from e
        print(f"[{r.style}] ok   {label} ({ms:.0f} ms) -> {type(e).__name__} code={code} "
              f"http={getattr(e, 'status_code', None)}", flush=True)
        r.calls += 1
        return
    ms = (time.monotonic() - t0) * 1000
    body = resp.body
    if body.success is not False or body.err_code != code:
        print(f"[{r.style}] FAIL {label}: expected {code}, got HTTP {resp.status_code} "
              f"Success={body.success!r} ErrCode={body.err_code!r}", flush=True)
        raise CheckFailed(f"{label}: no {code}")
    if capture is not None:
        problems = check_model(body, capture.last_raw, type(body).__name__)
        check(not problems, f"{label}: business-error body vs model: {problems}")
    print(f"[{r.style}] ok   {label} ({ms:.0f} ms) -> HTTP {resp.status_code} Success=false "
          f"ErrCode={code}", flush=True)
    r.calls += 1


def wait_for_plan_status(args, r: Runner, label: str, describe, cap: Capture, wanted: str) -> list[str]:
    """Describes the plan until its status is `wanted`; returns the statuses seen, in order."""
    deadline = time.monotonic() + args.precheck_s + 10
    seen: list[str] = []
    while True:
        body = r.call(label, describe, cap, dbs=True)
        check(body.total_elements == 1, f"{label}: TotalElements {body.total_elements!r}")
        status = body.items.backup_plan_detail[0].backup_plan_status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == wanted:
            return seen
        check(time.monotonic() < deadline, f"{label}: still {status!r}, expected {wanted!r}")
        time.sleep(min(0.05, args.precheck_s / 4))


def precheck_suite(args, r: Runner, style: str) -> None:
    """StartBackupPlan begins a precheck (init -> check_pass -> running); a second Start while it
    runs is refused; ModifyBackupObjects asks for a new precheck."""
    client = DbsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    cap = Capture(client)
    rt = RuntimeOptions()
    body = r.call("DBS CreateBackupPlan (precheck plan)", lambda: client.create_backup_plan_with_options(
        dbs_models.CreateBackupPlanRequest(
            region=args.region, instance_class="micro", database_type="MySQL", backup_method="logical",
            pay_type="postpay", database_region=args.region, storage_region=args.region,
            instance_type="RDS"), rt), cap, dbs=True)
    plan_id = body.backup_plan_id
    time.sleep(args.configure_delay_s)
    r.call("DBS ConfigureBackupPlan (precheck plan)", lambda: client.configure_backup_plan_with_options(
        dbs_models.ConfigureBackupPlanRequest(
            backup_plan_id=plan_id, backup_plan_name=unique("sdk-precheck-"),
            source_endpoint_instance_type="RDS", source_endpoint_region=args.region,
            source_endpoint_instance_id=args.rds_instance, source_endpoint_user_name="backup",
            source_endpoint_password="Sdk-compat-1", backup_objects=json.dumps([{"DBName": "app"}]),
            backup_period="Monday", backup_start_time="02:00"), rt), cap, dbs=True)

    def describe():
        return client.describe_backup_plan_list_with_options(
            dbs_models.DescribeBackupPlanListRequest(backup_plan_id=plan_id, region=args.region), rt)

    def start():
        return client.start_backup_plan_with_options(
            dbs_models.StartBackupPlanRequest(backup_plan_id=plan_id), rt)

    body = r.call("DBS StartBackupPlan (begins the precheck)", start, cap, dbs=True)
    check(isinstance(body.created_full_backupset_id, str) and body.created_full_backupset_id,
          f"StartBackupPlan: CreatedFullBackupsetId {body.created_full_backupset_id!r}")
    body = r.call("DBS DescribeBackupPlanList (prechecking)", describe, cap, dbs=True)
    plan = body.items.backup_plan_detail[0]
    check(plan.backup_plan_status in ("init", "check_pass"),
          f"right after StartBackupPlan: BackupPlanStatus {plan.backup_plan_status!r}")
    check(plan.err_message == "", f"precheck running: ErrMessage {plan.err_message!r}")
    expect_dbs_error(r, "DBS StartBackupPlan during the precheck", start, "OperationConflict", cap)
    seen = wait_for_plan_status(args, r, "DBS DescribeBackupPlanList (until running)", describe, cap, "running")
    check(set(seen) <= {"init", "check_pass", "running"}, f"precheck statuses {seen}")
    print(f"[{style}] ok   precheck statuses seen: {' -> '.join(seen)}", flush=True)

    body = r.call("DBS ModifyBackupObjects", lambda: client.modify_backup_objects_with_options(
        dbs_models.ModifyBackupObjectsRequest(
            backup_plan_id=plan_id, backup_objects=json.dumps([{"DBName": "app"}, {"DBName": "audit"}])),
        rt), cap, dbs=True)
    check(body.backup_plan_id == plan_id and body.need_precheck is True,
          f"ModifyBackupObjects: BackupPlanId {body.backup_plan_id!r} NeedPrecheck {body.need_precheck!r}")
    body = r.call("DBS DescribeBackupPlanList (after ModifyBackupObjects)", describe, cap, dbs=True)
    plan = body.items.backup_plan_detail[0]
    check(plan.backup_plan_status == "init", f"after ModifyBackupObjects: {plan.backup_plan_status!r}")
    check([o["DBName"] for o in json.loads(plan.backup_objects)] == ["app", "audit"],
          f"BackupObjects {plan.backup_objects!r}")
    r.call("DBS StartBackupPlan (after ModifyBackupObjects)", start, cap, dbs=True)
    wait_for_plan_status(args, r, "DBS DescribeBackupPlanList (until running again)", describe, cap, "running")
    r.call("DBS ReleaseBackupPlan (precheck plan)", lambda: client.release_backup_plan_with_options(
        dbs_models.ReleaseBackupPlanRequest(backup_plan_id=plan_id), rt), cap, dbs=True)


def client_token_suite(args, r: Runner, style: str) -> None:
    """A CreateBackupPlan ClientToken reused with other parameters is IdempotentParameterMismatch."""
    client = DbsClient(make_config(args, style, args.access_key_id, args.access_key_secret))
    cap = Capture(client)
    rt = RuntimeOptions()
    token = unique("sdk-token-")

    def create(instance_class: str):
        return lambda: client.create_backup_plan_with_options(dbs_models.CreateBackupPlanRequest(
            region=args.region, instance_class=instance_class, database_type="MySQL",
            backup_method="logical", pay_type="postpay", database_region=args.region,
            storage_region=args.region, instance_type="RDS", client_token=token), rt)

    body = r.call("DBS CreateBackupPlan (token)", create("small"), cap, dbs=True)
    plan_id = body.backup_plan_id
    expect_dbs_error(r, "DBS CreateBackupPlan (same ClientToken, other InstanceClass)", create("large"),
                     "IdempotentParameterMismatch", cap)
    body = r.call("DBS CreateBackupPlan (same ClientToken, same parameters)", create("small"), cap, dbs=True)
    check(body.backup_plan_id == plan_id, "ClientToken replay: another plan id")
    r.call("DBS ReleaseBackupPlan (token plan)", lambda: client.release_backup_plan_with_options(
        dbs_models.ReleaseBackupPlanRequest(backup_plan_id=plan_id), rt), cap, dbs=True)


# --------------------------------------------------------------------------- #


def parse_args(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    p.add_argument("--url", default=env("ALICLOUD_EMULATOR_URL"), help="emulator base URL http://HOST:PORT")
    p.add_argument("--access-key-id", default=env("ALICLOUD_ACCESS_KEY_ID"))
    p.add_argument("--access-key-secret", default=env("ALICLOUD_ACCESS_KEY_SECRET"))
    p.add_argument("--rds-instance", default=env("ALICLOUD_RDS_INSTANCE"), help="seeded Running RDS instance id")
    p.add_argument("--region", default=env("ALICLOUD_REGION", "cn-hangzhou"))
    p.add_argument("--styles", default="v3,v2", help=f"comma-separated subset of {','.join(STYLES)}")
    p.add_argument("--configure-delay-ms", type=int, default=int(env("ALICLOUD_CONFIGURE_DELAY_MS", "200")),
                   help="the emulator's --configure-delay-ms (the script waits that long plus a margin)")
    p.add_argument("--precheck-ms", type=int, default=int(env("ALICLOUD_PRECHECK_MS", "500")),
                   help="the emulator's --precheck-ms (how long a StartBackupPlan precheck lasts)")
    args = p.parse_args(argv)
    missing = [n for n in ("url", "access_key_id", "access_key_secret", "rds_instance") if not getattr(args, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if not args.url.startswith("http://"):
        p.error("--url must be http://HOST:PORT")
    args.endpoint = args.url[len("http://"):].rstrip("/")
    args.configure_delay_s = args.configure_delay_ms / 1000 + 0.1
    args.precheck_s = args.precheck_ms / 1000
    args.styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    for s in args.styles:
        if s not in STYLES:
            p.error(f"unknown style {s!r}")
    return args


def check_wire(style: str, sent: list[dict]) -> None:
    """Every request of this style was signed the way the style promises."""
    want = STYLES[style][2]
    kinds: dict[str, int] = {}
    for req in sent:
        kinds[req["kind"]] = kinds.get(req["kind"], 0) + 1
        if req["kind"] == "anonymous":
            check(req["action"] == "AssumeRoleWithOIDC", f"unsigned request for {req['action']}")
        else:
            check(req["kind"] == want, f"{req['action']} was signed {req['kind']!r}, expected {want!r}")
        if req["security_token"] and req["kind"] == "ACS3-HMAC-SHA256":
            check("x-acs-security-token" in req["signed_headers"].split(";"),
                  "V3 request with a security token did not sign x-acs-security-token")
    check(kinds.get(want, 0) > 0, f"no request signed {want}")
    check(any(q["form_body"] and q["kind"] == want for q in sent), "no signed request with a form body")
    check(any(q["security_token"] and q["kind"] == want for q in sent), "no signed request with a security token")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"[{style}] wire: {len(sent)} requests: {summary}; incl. form-body and security-token requests",
          flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import importlib.metadata as md
    versions = ", ".join(
        f"{n}=={md.version(n)}" for n in (
            "alibabacloud_tea_openapi", "alibabacloud_dbs20190306", "alibabacloud_rds20140815",
            "alibabacloud_sts20150401", "alibabacloud_credentials", "darabonba_core"))
    print(f"official SDKs: {versions}", flush=True)
    print(f"emulator: {args.url} account {args.access_key_id} instance {args.rds_instance}", flush=True)
    t0 = time.monotonic()
    total = 0
    for style in args.styles:
        print(f"== style {style}: {STYLES[style][0]}", flush=True)
        r = Runner(style)
        WIRE.take()
        try:
            dbs_suite(args, r, style)
            precheck_suite(args, r, style)
            client_token_suite(args, r, style)
            dbs_error_transport_suite(args, r, style)
            rds_suite(args, r, style)
            sts_suite(args, r, style)
            negative_suite(args, r, style)
            check_wire(style, WIRE.take())
        except CheckFailed as e:
            print(f"[{style}] FAILED: {e}", flush=True)
            if e.__cause__ is not None:
                traceback.print_exception(e.__cause__, file=sys.stdout)
            return 1
        total += r.calls
        print(f"== style {style}: {r.calls} calls passed", flush=True)
    print(f"ALL OK: {total} calls, styles {','.join(args.styles)}, {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
