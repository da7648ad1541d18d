// A wahooks queue worker in TypeScript (AWS SDK v3), typed with the types generated from the
// schema (src/wahooks-event.d.ts, by `make schema`).
//
//   node dist/worker.js --queue-url URL [--endpoint-url http://127.0.0.1:4566] [--idle-exit N]
//
// Long-polls one queue; for each message: parses the event (a type, chat kind, content kind or
// status that a later wahooks adds is read as the catch-all, as the Rust consumer reads it), skips an event id it has already
// handled (delivery is at least once), follows its pointers (`data.stored_item`: an event too
// large for the queue, the whole event is in its DynamoDB item; `data.raw_pointer`: the body is
// kept apart, in a body item or an S3 object) so that `handle` gets the event with `data.raw`,
// calls `handle`, and deletes the message. A message whose handling fails is not deleted: SQS
// shows it again after the queue's visibility timeout, and after five receives it moves to the
// dead-letter queue; the later messages of its chat (its FIFO group) in the same batch wait with
// it, so a chat's events are handled in order.
//
// Replace `handle` with your own. The seen-ids set lives in memory, bounded: a fleet that must
// never act twice keeps it in a store of its own (e.g. a DynamoDB conditional put).

import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { decompress } from "fzstd";
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";

import type { Chat, Content, MediaFile, MessageStatus, RawPointer, WahooksEvent } from "./wahooks-event.js";

// A minor version of the event may add event types, chat kinds, content kinds and statuses
// (docs/events.md, "Compatibility policy"). A worker built today reads a value it does not know
// as the catch-all, as the Rust consumer does, so that the types below tell the truth and the
// message is not failed until it reaches the dead-letter queue. Each list is checked against the
// generated types both ways: a value they lack does not compile, nor does a list that misses one
// of theirs (after `make schema`, add the new values here).
const EVENT_TYPES = [
  "whatsapp.message.received",
  "whatsapp.message.sent",
  "whatsapp.message.status",
  "whatsapp.notification",
  "whatsapp.chat.presence",
  "whatsapp.instance.connected",
  "whatsapp.instance.disconnected",
  "whatsapp.instance.initial_data",
  "whatsapp.contact.blocked",
  "whatsapp.template.updated",
  "whatsapp.instance.proxy_failed",
  "whatsapp.conversation.turn",
  "whatsapp.instance.silent",
  "whatsapp.instance.resumed",
  "whatsapp.media.archived",
  "whatsapp.media.failed",
  "whatsapp.unknown",
] as const satisfies readonly WahooksEvent["type"][];
const PROVIDERS = ["zapi", "hubmessage", "wwa", "meta", "evolution", "waha", "other"] as const satisfies readonly WahooksEvent["provider"][];
const CHAT_KINDS = ["direct", "group", "broadcast", "newsletter", "status", "other"] as const satisfies readonly Chat["kind"][];
const CONTENT_KINDS = [
  "text",
  "image",
  "audio",
  "video",
  "ptv",
  "document",
  "sticker",
  "location",
  "live_location",
  "contact",
  "reaction",
  "poll",
  "poll_vote",
  "button_reply",
  "list_reply",
  "template",
  "interactive",
  "order",
  "payment",
  "event",
  "waiting",
  "other",
] as const satisfies readonly Content["kind"][];
const STATUSES = [
  "pending",
  "sent",
  "delivered",
  "read",
  "read_by_me",
  "played",
  "failed",
  "deleted",
  "other",
] as const satisfies readonly MessageStatus[];

/** `true` only when `List` names every value of `T`. */
type Complete<T, List extends readonly unknown[]> = [Exclude<T, List[number]>] extends [never] ? true : never;
const complete: [
  Complete<WahooksEvent["type"], typeof EVENT_TYPES>,
  Complete<WahooksEvent["provider"], typeof PROVIDERS>,
  Complete<Chat["kind"], typeof CHAT_KINDS>,
  Complete<Content["kind"], typeof CONTENT_KINDS>,
  Complete<MessageStatus, typeof STATUSES>,
] = [true, true, true, true, true];
void complete;

const OPEN_ENUMS: [path: string[], known: ReadonlySet<string>, catchAll: string][] = [
  [["type"], new Set(EVENT_TYPES), "whatsapp.unknown"],
  [["provider"], new Set(PROVIDERS), "other"],
  [["data", "chat", "kind"], new Set(CHAT_KINDS), "other"],
  [["data", "content", "kind"], new Set(CONTENT_KINDS), "other"],
  [["data", "status"], new Set(STATUSES), "other"],
];

/** One message body (or a stored item's) as the event, later vocabulary read as the catch-all. */
export function readEvent(body: string): WahooksEvent {
  const doc = JSON.parse(body);
  for (const [path, known, catchAll] of OPEN_ENUMS) {
    let node = doc;
    for (const key of path.slice(0, -1)) node = node !== null && typeof node === "object" ? node[key] : undefined;
    const leaf = path[path.length - 1];
    if (node !== null && typeof node === "object" && typeof node[leaf] === "string" && !known.has(node[leaf])) {
      node[leaf] = catchAll;
    }
  }
  return doc as WahooksEvent;
}

/** The last `capacity` event ids handled, oldest forgotten first. */
export class SeenIds {
  private ids = new Set<string>();
  constructor(private capacity = 100_000) {}
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): void {
    this.ids.delete(id);
    this.ids.add(id);
    while (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
  }
}

/** The clients that follow pointers: DynamoDB for items (an event's, a body item), S3 for bodies in the bucket. */
export interface PointerClients {
  dynamodb: DynamoDBClient;
  s3: S3Client;
}

/** The `body` attribute of an item, decompressed (zstd; read consistently: it was just written). */
async function itemBody(dynamodb: DynamoDBClient, table: string, pk: string, sk: string): Promise<Uint8Array> {
  const { Item } = await dynamodb.send(
    new GetItemCommand({ TableName: table, Key: { pk: { S: pk }, sk: { S: sk } }, ConsistentRead: true }),
  );
  const body = Item?.body?.B;
  if (!body) throw new Error(`nothing at ${table} ${pk} ${sk} (expired?)`);
  return decompress(body);
}

/**
 * The raw JSON text a `data.raw_pointer` names, checked against its SHA-256: the pointer travels
 * in the message, so a body that is not the one it describes (a wrong key, a rewritten object)
 * is refused rather than handed to `handle` as this event's.
 */
async function rawText(pointer: RawPointer, clients: PointerClients): Promise<string> {
  let bytes: Uint8Array;
  let place: string;
  if (pointer.table && pointer.pk && pointer.sk) {
    place = `${pointer.table} ${pointer.pk} ${pointer.sk}`;
    bytes = await itemBody(clients.dynamodb, pointer.table, pointer.pk, pointer.sk);
  } else if (pointer.bucket && pointer.key) {
    place = `s3://${pointer.bucket}/${pointer.key}`;
    const { Body } = await clients.s3.send(new GetObjectCommand({ Bucket: pointer.bucket, Key: pointer.key }));
    if (!Body) throw new Error(`nothing at ${place} (expired?)`);
    bytes = await Body.transformToByteArray();
  } else {
    throw new Error("a raw_pointer that names no place");
  }
  if (createHash("sha256").update(bytes).digest("hex") !== pointer.sha256) {
    throw new Error(`the body at ${place} is not the one the event names`);
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/**
 * The whole event, `data.raw` included, whatever the message carried: first the event in the
 * item `data.stored_item` names (the message was too large for its queue), then, in either case,
 * the body `data.raw_pointer` names (one body stored once for a webhook's several events, or one
 * too large for an item), read into `data.raw`. The worker needs `dynamodb:GetItem` on the events
 * table and `s3:GetObject` on the body bucket.
 */
export async function resolvePointer(event: WahooksEvent, clients: PointerClients): Promise<WahooksEvent> {
  const stored = event.data.stored_item;
  if (stored) {
    const body = await itemBody(clients.dynamodb, stored.table, stored.pk, stored.sk);
    event = readEvent(new TextDecoder().decode(body));
  }
  const pointer = event.data.raw_pointer;
  if ((event.data.raw === undefined || event.data.raw === null) && pointer) {
    event.data.raw = JSON.parse(await rawText(pointer, clients));
  }
  return event;
}

/** Your code. Throw to leave the message for a later attempt. */
export async function handle(event: WahooksEvent): Promise<void> {
  if (process.env.WORKER_FAIL_ID && event.id === process.env.WORKER_FAIL_ID) {
    throw new Error(`refusing ${event.id} (WORKER_FAIL_ID)`);
  }
  console.log(
    JSON.stringify({
      worker: "typescript",
      id: event.id,
      type: event.type,
      chat: event.subject ?? null,
      has_raw: event.data.raw !== undefined && event.data.raw !== null,
      text: event.data.content?.text ?? null,
      // A conversation turn: answer once, for all the messages of the burst.
      turn: event.data.turn ? event.data.turn.messages.map((m) => m.message_id ?? m.event_id) : null,
      // A silent or resumed instance: how long it may stay quiet.
      silence_window_s: event.data.silence?.window_seconds ?? null,
      // An archived media file: where it is kept (presign a GetObject on bucket/key to share it).
      media_key: event.data.media?.key ?? null,
    }),
  );
}

export interface RunOptions {
  endpoint?: string;
  waitSeconds?: number;
  /** Stop after this many empty receives in a row (never when undefined). */
  idleExit?: number;
}

/** A URL that downloads an archived media file (`whatsapp.media.archived`) for `expiresIn`
 * seconds (at most 7 days), signed with this worker's credentials; `null` when none is archived. */
export async function mediaUrl(s3: S3Client, media: MediaFile, expiresIn = 3600): Promise<string | null> {
  if (!media.bucket || !media.key) return null;
  return getSignedUrl(s3, new GetObjectCommand({ Bucket: media.bucket, Key: media.key }), { expiresIn });
}

export async function run(queueUrl: string, handler: (e: WahooksEvent) => Promise<void>, options: RunOptions = {}) {
  const sqs = new SQSClient({ endpoint: options.endpoint });
  const dynamodb = new DynamoDBClient({ endpoint: options.endpoint });
  // A local stand-in on loopback has no per-bucket host names: path-style there.
  const s3 = new S3Client({ endpoint: options.endpoint, forcePathStyle: options.endpoint !== undefined });
  const seen = new SeenIds();
  let idle = 0;
  while (options.idleExit === undefined || idle < options.idleExit) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: options.waitSeconds ?? 20,
        MessageAttributeNames: ["All"],
        MessageSystemAttributeNames: ["MessageGroupId"],
      }),
    );
    idle = Messages.length ? 0 : idle + 1;
    // FIFO: once a chat's message fails, its later ones wait too (a chat stays in order).
    const failedGroups = new Set<string>();
    for (const message of Messages) {
      const group = message.Attributes?.MessageGroupId;
      if (group && failedGroups.has(group)) continue;
      try {
        const event = readEvent(message.Body ?? "");
        if (seen.has(event.id)) {
          console.log(JSON.stringify({ worker: "typescript", duplicate: event.id }));
        } else {
          await handler(await resolvePointer(event, { dynamodb, s3 }));
          seen.add(event.id);
          // An archived file: a link to hand out (an hour).
          if (event.data.media) {
            const url = await mediaUrl(s3, event.data.media);
            if (url) console.log(JSON.stringify({ worker: "typescript", presigned: event.id, url }));
          }
        }
      } catch (error) {
        // Not deleted: the message comes back after its visibility timeout.
        console.log(JSON.stringify({ worker: "typescript", failed: message.MessageId, error: String(error) }));
        if (group) failedGroups.add(group);
        continue;
      }
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
    }
  }
}

const { values } = parseArgs({
  options: {
    "queue-url": { type: "string" },
    "endpoint-url": { type: "string" },
    "wait-seconds": { type: "string" },
    "idle-exit": { type: "string" },
  },
});
if (!values["queue-url"]) {
  console.error("usage: node dist/worker.js --queue-url URL [--endpoint-url URL] [--wait-seconds N] [--idle-exit N]");
  process.exit(2);
}
await run(values["queue-url"], handle, {
  endpoint: values["endpoint-url"],
  waitSeconds: values["wait-seconds"] ? Number(values["wait-seconds"]) : undefined,
  idleExit: values["idle-exit"] ? Number(values["idle-exit"]) : undefined,
});
