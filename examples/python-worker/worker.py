"""A wahooks queue worker in Python (boto3), typed with the models generated from the schema.

    python worker.py --queue-url URL [--endpoint-url http://127.0.0.1:4566] [--idle-exit N]

Long-polls one queue; for each message: parses the event (`wahooks_event.WahooksEvent`, generated
from `schema/wahooks-event.schema.json` by `make schema`; a type, chat kind, content kind or
status that a later wahooks adds is read as the catch-all, as the Rust consumer reads it), skips an event id it has already
handled (delivery is at least once), follows its pointers (`data.stored_item`: an event too
large for the queue, the whole event is in its DynamoDB item; `data.raw_pointer`: the body is kept
apart, in a body item or an S3 object) so that `handle` gets the event with `data.raw`, calls
`handle`, and deletes the message. A message whose handling fails is not deleted: SQS shows it
again after the queue's visibility timeout, and after five receives it moves to the queue's
dead-letter queue; the later messages of its chat (its FIFO group) in the same batch wait with
it, so a chat's events are handled in order.

Replace `handle` with your own. The seen-ids set lives in memory, bounded: a worker fleet
that must never act twice keeps it in a store of its own (e.g. a DynamoDB conditional put).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import OrderedDict
from enum import Enum
from typing import Any, Callable, Literal, get_args, get_origin

import boto3
import botocore.config
import zstandard
from pydantic import RootModel

from wahooks_event import ChatKind, ContentKind, EventType, MessageStatus, Provider, RawPointer, WahooksEvent


def _values(annotation: Any) -> set[str]:
    """The values a generated enum type accepts (an Enum, a Literal, a RootModel or a union of them)."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {member.value for member in annotation}
    if isinstance(annotation, type) and issubclass(annotation, RootModel):
        return _values(annotation.model_fields["root"].annotation)
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    return set().union(*(_values(a) for a in get_args(annotation)))


# A minor version of the event may add event types, providers, chat kinds, content kinds and statuses
# (docs/events.md, "Compatibility policy"). A worker built today reads a value it does not know
# as the catch-all, as the Rust consumer does, instead of failing the message until it reaches
# the dead-letter queue.
OPEN_ENUMS: list[tuple[tuple[str, ...], set[str], str]] = [
    (("type",), _values(EventType), "whatsapp.unknown"),
    (("provider",), _values(Provider), "other"),
    (("data", "chat", "kind"), _values(ChatKind), "other"),
    (("data", "content", "kind"), _values(ContentKind), "other"),
    (("data", "status"), _values(MessageStatus), "other"),
]


def read_event(body: str | bytes) -> WahooksEvent:
    """One message body (or a stored item's) as the event, later vocabulary read as the catch-all."""
    doc = json.loads(body)
    for path, known, catch_all in OPEN_ENUMS:
        *parents, leaf = path
        node: Any = doc
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and node[leaf] not in known:
            node[leaf] = catch_all
    return WahooksEvent.model_validate(doc)


class SeenIds:
    """The last `capacity` event ids handled, oldest forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def _item_body(dynamodb, table: str, pk: str, sk: str) -> bytes:
    """The `body` attribute of an item, decompressed (zstd; read consistently: it was just written)."""
    item = dynamodb.get_item(
        TableName=table,
        Key={"pk": {"S": pk}, "sk": {"S": sk}},
        ConsistentRead=True,
    ).get("Item")
    if item is None or "B" not in item.get("body", {}):
        raise LookupError(f"nothing at {table} {pk} {sk} (expired?)")
    # A streaming decompressor: it needs no content size in the frame header.
    return zstandard.ZstdDecompressor().decompressobj().decompress(item["body"]["B"])


def read_raw(pointer: RawPointer, dynamodb, s3) -> str:
    """The raw JSON text a `data.raw_pointer` names, checked against its SHA-256.

    The pointer travels in the message: a body that is not the one it describes (a wrong key, a
    rewritten object) is refused rather than handed to `handle` as this event's.
    """
    if pointer.table and pointer.pk and pointer.sk:
        place = f"{pointer.table} {pointer.pk} {pointer.sk}"
        data = _item_body(dynamodb, pointer.table, pointer.pk, pointer.sk)
    elif pointer.bucket and pointer.key:
        place = f"s3://{pointer.bucket}/{pointer.key}"
        data = s3.get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read()
    else:
        raise LookupError("a raw_pointer that names no place")
    if hashlib.sha256(data).hexdigest() != pointer.sha256:
        raise ValueError(f"the body at {place} is not the one the event names")
    return data.decode("utf-8")


def resolve_pointer(event: WahooksEvent, dynamodb, s3) -> WahooksEvent:
    """The whole event, `data.raw` included, whatever the message carried.

    First the event in the item `data.stored_item` names (the message was too large for its
    queue); then, in either case, the body `data.raw_pointer` names (one body stored once for a
    webhook's several events, or one too large for an item), read into `data.raw`. The worker
    needs `dynamodb:GetItem` on the events table and `s3:GetObject` on the body bucket.
    """
    stored = event.data.stored_item
    if stored is not None:
        event = read_event(_item_body(dynamodb, stored.table, stored.pk, stored.sk))
    pointer = event.data.raw_pointer
    if event.data.raw is None and pointer is not None:
        event.data.raw = json.loads(read_raw(pointer, dynamodb, s3))
    return event


def handle(event: WahooksEvent) -> None:
    """Your code. Raise to leave the message for a later attempt."""
    fail = os.environ.get("WORKER_FAIL_ID")
    if fail and event.id == fail:
        raise RuntimeError(f"refusing {event.id} (WORKER_FAIL_ID)")
    print(
        json.dumps(
            {
                "worker": "python",
                "id": event.id,
                "type": event.type.value,
                "chat": event.subject,
                "has_raw": event.data.raw is not None,
                "text": event.data.content.text if event.data.content else None,
                # A conversation turn: answer once, for all the messages of the burst.
                "turn": (
                    [m.message_id or m.event_id for m in event.data.turn.messages]
                    if event.data.turn
                    else None
                ),
                # A silent or resumed instance: how long it may stay quiet.
                "silence_window_s": event.data.silence.window_seconds if event.data.silence else None,
                # An archived media file: where it is kept (presign a GetObject on bucket/key).
                "media_key": event.data.media.key if event.data.media else None,
            }
        ),
        flush=True,
    )


def media_url(media, s3, expires: int = 3600) -> str | None:
    """A URL that downloads an archived media file (`whatsapp.media.archived`) for `expires`
    seconds (at most 7 days), signed with this worker's credentials; None when none is archived."""
    if not media.bucket or not media.key:
        return None
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": media.bucket, "Key": media.key}, ExpiresIn=expires
    )


def run(
    queue_url: str,
    handler: Callable[[WahooksEvent], None],
    *,
    endpoint_url: str | None = None,
    wait_seconds: int = 20,
    idle_exit: int | None = None,
) -> None:
    """Poll until `idle_exit` empty receives in a row (forever when None)."""
    sqs = boto3.client("sqs", endpoint_url=endpoint_url)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url)
    # A local stand-in on loopback has no per-bucket host names: path-style there.
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=botocore.config.Config(s3={"addressing_style": "path"}) if endpoint_url else None,
    )
    seen = SeenIds()
    idle = 0
    while idle_exit is None or idle < idle_exit:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId"],
        ).get("Messages", [])
        idle = 0 if got else idle + 1
        # FIFO: once a chat's message fails, its later ones wait too (a chat stays in order).
        failed_groups: set[str] = set()
        for message in got:
            group = message.get("Attributes", {}).get("MessageGroupId")
            if group in failed_groups:
                continue
            try:
                event = read_event(message["Body"])
                if event.id not in seen:
                    handler(resolve_pointer(event, dynamodb, s3))
                    seen.add(event.id)
                    # An archived file: a link to hand out (an hour).
                    if event.data.media and (url := media_url(event.data.media, s3)):
                        print(json.dumps({"worker": "python", "presigned": event.id, "url": url}), flush=True)
                else:
                    print(json.dumps({"worker": "python", "duplicate": event.id}), flush=True)
            except Exception as error:  # the message comes back after its visibility timeout
                print(json.dumps({"worker": "python", "failed": message["MessageId"], "error": str(error)}), flush=True)
                if group:
                    failed_groups.add(group)
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--endpoint-url", help="an AWS endpoint other than the default (the local stack)")
    parser.add_argument("--wait-seconds", type=int, default=20, help="long-poll time of each receive")
    parser.add_argument("--idle-exit", type=int, help="exit after this many empty receives in a row")
    args = parser.parse_args()
    run(
        args.queue_url,
        handle,
        endpoint_url=args.endpoint_url,
        wait_seconds=args.wait_seconds,
        idle_exit=args.idle_exit,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
