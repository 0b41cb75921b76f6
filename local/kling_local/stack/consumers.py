"""SQS event source mappings, emulated: long-poll a queue, invoke the function, delete what succeeded.

Semantics follow Lambda's poller:
- a batch is up to `batch_size` (≤ 10) messages, as one `Records` event;
- with `ReportBatchItemFailures`, only the records named in `batchItemFailures` stay on the queue; an
  unknown or empty `itemIdentifier` fails the whole batch, as in AWS;
- an exception (or any failure without that response type) leaves the whole batch on the queue;
- nothing is deleted on failure: the messages come back after the queue's visibility timeout, and moto's
  own redrive moves them to the DLQ once `ApproximateReceiveCount` reaches `maxReceiveCount`.

`delivery="eventbridge"` consumes the local target queue of an EventBridge rule (see `resources`): each
message body is one EventBridge event, invoked on its own like Lambda's asynchronous invocation: after
`max_attempts` failed tries the message is dropped and, when the function has an SQS OnFailure
destination, Lambda's invocation record (`requestContext.condition = "RetriesExhausted"`,
`requestPayload`, `responsePayload`) is sent there.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from kling_local.stack.lambdas import FunctionRegistry

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

WAIT_TIME_S = 1  # long-poll length: how long `stop()` may wait for a consumer

Delivery = Literal["sqs", "eventbridge"]


@dataclass(frozen=True)
class QueueMapping:
    """One (queue, function) pair that Lambda would poll."""

    queue_url: str
    queue_arn: str
    function: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    delivery: Delivery = "sqs"
    max_attempts: int = 3
    on_failure_queue_url: str | None = None


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage result as the record Lambda hands the function."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": base64.b64encode(value["BinaryValue"]).decode()
                if "BinaryValue" in value
                else None,
                "stringListValues": list(value.get("StringListValues", [])),
                "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """Ids to keep from a ReportBatchItemFailures response; None means the whole batch failed."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failures = response["batchItemFailures"]
    ids = {item.get("itemIdentifier") for item in failures if isinstance(item, dict)}
    if len(ids) != len(failures) or not ids <= message_ids:
        return None
    return {str(item) for item in ids}


class QueueConsumer:
    """`workers` polling threads for one mapping (Lambda runs several batches of a queue at once; one
    thread is one concurrent invocation); stops within one long-poll interval."""

    def __init__(
        self,
        mapping: QueueMapping,
        registry: FunctionRegistry,
        sqs: SQSClient,
        *,
        region: str,
        account_id: str,
        workers: int = 1,
    ) -> None:
        self.mapping = mapping
        self._registry = registry
        self._sqs = sqs
        self._region = region
        self._account_id = account_id
        self._stop = threading.Event()
        name = f"sqs-{mapping.function}-{mapping.queue_arn.rsplit(':', 1)[-1]}"
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{n}", daemon=True)
            for n in range(max(1, workers))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        """Ask the threads to finish after their current poll (stop many consumers in parallel)."""
        self._stop.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("polling %s failed", self.mapping.queue_url)
                self._stop.wait(1.0)

    def _poll_once(self) -> None:
        response = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max(1, min(self.mapping.batch_size, 10)),
            WaitTimeSeconds=WAIT_TIME_S,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages or self._stop.is_set():
            return
        if self.mapping.delivery == "eventbridge":
            self._deliver_events(messages)
        else:
            self._deliver_batch(messages)

    def _deliver_batch(self, messages: list[MessageTypeDef]) -> None:
        event = {"Records": [sqs_record(m, self.mapping.queue_arn, self._region) for m in messages]}
        try:
            response = self._registry.invoke(self.mapping.function, event)
        except Exception:
            logger.exception(
                "%s failed on a batch of %d from %s",
                self.mapping.function,
                len(messages),
                self.mapping.queue_arn,
            )
            return
        keep: set[str] | None = set()
        if self.mapping.report_batch_item_failures:
            keep = failed_ids(response, {m["MessageId"] for m in messages})
        if keep is None:
            logger.error(
                "%s returned an invalid batchItemFailures: the whole batch is retried", self.mapping.function
            )
            return
        self._delete([m for m in messages if m["MessageId"] not in keep])

    def _deliver_events(self, messages: list[MessageTypeDef]) -> None:
        done = []
        for message in messages:
            event = json.loads(message["Body"])
            event.setdefault("account", self._account_id)
            try:
                self._registry.invoke(self.mapping.function, event)
            except Exception as exc:
                logger.exception("%s failed on EventBridge event %s", self.mapping.function, event.get("id"))
                attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                if attempts < self.mapping.max_attempts:
                    continue  # retried when the visibility timeout expires
                self._send_failure_record(event, exc, attempts)
            done.append(message)
        self._delete(done)

    def _send_failure_record(self, event: Any, exc: Exception, attempts: int) -> None:
        """Lambda's OnFailure destination record for an asynchronous invocation that ran out of retries."""
        if self.mapping.on_failure_queue_url is None:
            logger.error(
                "%s: event %s dropped after %d tries", self.mapping.function, event.get("id"), attempts
            )
            return
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{self._registry.get(self.mapping.function).arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": str(exc), "errorType": type(exc).__name__},
        }
        self._sqs.send_message(QueueUrl=self.mapping.on_failure_queue_url, MessageBody=json.dumps(record))

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
