"""The local stack's moto must not lose a write to a refused transaction elsewhere in the table.

moto rolls a refused `TransactWriteItems` back by restoring a copy of the whole table taken when the
transaction began; another request thread's write in between was lost (found by the chaos run: a generation
read `failed`, then `queued` again). `kling_local.moto_dynamodb` runs one table operation at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from kling_local import moto_dynamodb

# Spend one unit of the budget, only if some is left: the transaction's condition.
SPEND_ONE = {
    "Update": {
        "TableName": "t",
        "Key": {"pk": {"S": "budget"}},
        "UpdateExpression": "SET #l = #l - :one",
        "ConditionExpression": "#l > :zero",
        "ExpressionAttributeNames": {"#l": "left"},
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
    }
}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        yield dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def test_a_write_during_a_refused_transaction_is_kept(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    moto_dynamodb.install()
    table.put_item(Item={"pk": "generation", "status": "queued"})
    table.put_item(Item={"pk": "budget", "left": 0})
    client = boto3.client("dynamodb")
    done = threading.Event()

    def concurrent_final_write() -> None:
        table.put_item(Item={"pk": "generation", "status": "failed"})
        done.set()

    # Another request writes while the transaction is checking its conditions (at most 0.5 s later).
    checking = DynamoDBBackend.get_item

    def get_item_meanwhile(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not done.is_set():
            threading.Thread(target=concurrent_final_write).start()
            done.wait(0.5)
        return checking(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item_meanwhile)
    with pytest.raises(ClientError, match="TransactionCanceled"):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "other"}}}},
                SPEND_ONE,
            ]
        )
    assert done.wait(5)
    assert table.get_item(Key={"pk": "generation"})["Item"]["status"] == "failed"
    assert "Item" not in table.get_item(Key={"pk": "other"})


def test_a_transaction_whose_conditions_hold_applies_every_write(table: Any) -> None:
    moto_dynamodb.install()  # this path skips moto's copy of the table: the writes must all land still
    table.put_item(Item={"pk": "budget", "left": 1})
    boto3.client("dynamodb").transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": "t",
                    "Item": {"pk": {"S": "generation"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            SPEND_ONE,
        ]
    )
    assert "Item" in table.get_item(Key={"pk": "generation"})
    assert table.get_item(Key={"pk": "budget"})["Item"]["left"] == 0
