/* Generated from schema/wahooks-event.schema.json by json-schema-to-typescript (make schema). Do not edit. */

/**
 * The kinds of alias a person has.
 */
export type AliasKind = "phone" | "lid" | "user_id" | "parent_user_id" | "username";
/**
 * The state of a sent message, mapped from each provider's words.
 * New values may appear in a later version (a worker reads one it does not know as `other`).
 */
export type MessageStatus =
  ("pending" | "sent" | "delivered" | "read" | "read_by_me" | "played" | "failed" | "deleted") | "other";

/**
 * One canonical event, serialised as a CloudEvents 1.0 structured JSON document.
 */
export interface WahooksEvent {
  data: EventData;
  /**
   * Always `application/json`.
   */
  datacontenttype: "application/json";
  /**
   * The URI of the schema this event follows, whose last part is the schema's version
   * (a minor version only adds; see the compatibility policy of docs/events.md). Empty in events
   * stored before wahooks set it.
   */
  dataschema?: string;
  /**
   * Extension: the wahooks endpoint that received it.
   */
  endpoint: string;
  /**
   * The event id: 32 hex digits, the same for every delivery of the same event (dedupe on it).
   */
  id: string;
  /**
   * Extension: the provider's instance (Z-API `instanceId`, Meta phone number id…).
   */
  instance: string;
  /**
   * Extension: the provider.
   */
  provider: "zapi" | "hubmessage" | "wwa" | "meta" | "evolution" | "waha" | "other";
  /**
   * Extension: when wahooks received it.
   */
  receivedat: string;
  /**
   * `wahooks/<provider>/<instance>`.
   */
  source: string;
  /**
   * Always `1.0` (the CloudEvents version).
   */
  specversion: "1.0";
  /**
   * The chat id, verbatim from the provider.
   */
  subject?: string | null;
  /**
   * When it happened: the provider's time where it has one, else when we received it.
   */
  time: string;
  /**
   * The event type.
   */
  type:
    | "whatsapp.message.received"
    | "whatsapp.message.sent"
    | "whatsapp.message.status"
    | "whatsapp.notification"
    | "whatsapp.chat.presence"
    | "whatsapp.instance.connected"
    | "whatsapp.instance.disconnected"
    | "whatsapp.instance.initial_data"
    | "whatsapp.contact.blocked"
    | "whatsapp.template.updated"
    | "whatsapp.instance.proxy_failed"
    | "whatsapp.conversation.turn"
    | "whatsapp.instance.silent"
    | "whatsapp.instance.resumed"
    | "whatsapp.media.archived"
    | "whatsapp.media.failed"
    | "whatsapp.unknown";
}
/**
 * The normalised fields and the raw provider JSON.
 */
export interface EventData {
  /**
   * The chat.
   */
  chat?: Chat | null;
  /**
   * The content of a message.
   */
  content?: Content | null;
  /**
   * An error reported by the provider.
   */
  error?: EventError | null;
  /**
   * Whether the connected number sent it.
   */
  from_me?: boolean | null;
  /**
   * A message's media file, archived or not (`whatsapp.media.archived`,
   * `whatsapp.media.failed`). Since schema 1.2.
   */
  media?: MediaFile | null;
  /**
   * The WhatsApp message id this event is about.
   */
  message_id?: string | null;
  /**
   * The notification's name, e.g. `REVOKE`, `GROUP_PARTICIPANT_ADD`.
   */
  notification?: string | null;
  /**
   * The notification's parameters, as the provider sent them.
   */
  parameters?: {
    [k: string]: unknown;
  };
  /**
   * In groups: who acted (sent, read, played).
   */
  participant?: string | null;
  /**
   * Presence in lower case: available, unavailable, composing, paused, recording (the
   * provider's word, lower-cased: new values may appear).
   */
  presence?: ("available" | "unavailable" | "composing" | "paused" | "recording") | string;
  /**
   * The provider's JSON, untouched (insignificant whitespace removed, nothing else).
   * Absent when it is stored once for several events or is too large to travel with the event
   * (then `raw_pointer` says where it is), or when a queue message was too large to carry it
   * (then `stored_item` points at the whole event).
   */
  raw?: {
    [k: string]: unknown;
  };
  /**
   * Where `raw` is kept when the event does not carry it: a webhook's body is stored once,
   * whatever the number of events it holds, and a body too large for a DynamoDB item is kept
   * in S3 (docs/events.md, `raw`). Since schema 1.1.
   */
  raw_pointer?: RawPointer | null;
  /**
   * The message this one replies to, reacts to, votes on or pins.
   */
  reply_to?: string | null;
  /**
   * The sender.
   */
  sender?: Sender | null;
  /**
   * An instance's silence (`whatsapp.instance.silent`, `whatsapp.instance.resumed`). Since
   * schema 1.2.
   */
  silence?: Silence | null;
  /**
   * The state of a sent message.
   */
  status?: MessageStatus | null;
  /**
   * Where the status stands in a message's life (pending 0, sent 1, delivered 2, read 3,
   * played 4, failed and deleted 5): keep the highest when statuses arrive out of order.
   */
  status_rank?: number | null;
  /**
   * Where the full event is stored, when `raw` was left out to fit a queue message.
   */
  stored_item?: StoredItemPointer | null;
  /**
   * A conversation turn's messages (`whatsapp.conversation.turn`). Since schema 1.2.
   */
  turn?: Turn | null;
}
/**
 * The chat: the provider's id verbatim, its kind, the conversation key, and the aliases of the
 * person a direct chat is with (docs/events.md, "Aliases and the conversation key").
 */
export interface Chat {
  /**
   * The provider's chat id as sent (Z-API `phone`, e.g. `1203…-group`).
   */
  id: string;
  /**
   * The conversation key of a direct chat, when it is not `id`: the same whichever alias the
   * body used (the chat id the person was first seen under). A chat's events share one
   * partition and one FIFO group under `key`, else `id`. Since schema 1.3.
   */
  key?: string | null;
  /**
   * direct, group, broadcast, newsletter or status.
   */
  kind: "direct" | "group" | "broadcast" | "newsletter" | "status" | "other";
  /**
   * Which of the aliases above this body did not show: learned from earlier bodies. Since
   * schema 1.3.
   */
  learned?: AliasKind[];
  /**
   * The chat's WhatsApp LID (`…@lid`), when known.
   */
  lid?: string | null;
  /**
   * Keys of conversations found to be this person after they had begun apart: their earlier
   * events stay under those keys. Since schema 1.3.
   */
  merged?: string[];
  /**
   * The person's parent business-scoped user id (Meta), when known. Since schema 1.3.
   */
  parent_user_id?: string | null;
  /**
   * The person's phone number (digits), when known. Since schema 1.3.
   */
  phone?: string | null;
  /**
   * The person's business-scoped user id (Meta), when known. Since schema 1.3.
   */
  user_id?: string | null;
  /**
   * The person's username, when known. Since schema 1.3.
   */
  username?: string | null;
}
/**
 * A message's content in one vocabulary. Only what applies to its kind is set.
 */
export interface Content {
  /**
   * Media caption.
   */
  caption?: string | null;
  /**
   * Shared contacts (vCards), one per contact.
   */
  contacts?: SharedContact[];
  /**
   * Document file name.
   */
  file_name?: string | null;
  /**
   * The message was forwarded.
   */
  forwarded?: boolean;
  /**
   * The message was forwarded many times (WhatsApp's "forwarded many times" label).
   */
  frequently_forwarded?: boolean;
  /**
   * What kind of content this is.
   */
  kind:
    | (
        | "text"
        | "image"
        | "audio"
        | "video"
        | "ptv"
        | "document"
        | "sticker"
        | "location"
        | "live_location"
        | "contact"
        | "reaction"
        | "poll"
        | "poll_vote"
        | "button_reply"
        | "list_reply"
        | "template"
        | "interactive"
        | "order"
        | "payment"
        | "event"
        | "waiting"
      )
    | "other";
  /**
   * Latitude (locations).
   */
  latitude?: number | null;
  /**
   * Longitude (locations).
   */
  longitude?: number | null;
  /**
   * The provider's media id, when the file is fetched by id rather than by URL (Meta: `GET
   * /<media_id>` on the Graph API answers a short-lived download URL).
   */
  media_id?: string | null;
  /**
   * Media URL (often temporary at the provider).
   */
  media_url?: string | null;
  /**
   * Media MIME type.
   */
  mime_type?: string | null;
  /**
   * Poll options or the options voted for.
   */
  options?: string[];
  /**
   * An order placed from a catalog.
   */
  order?: Order | null;
  /**
   * The ad or post the user came from (click-to-WhatsApp ads).
   */
  referral?: Referral | null;
  /**
   * A reaction that was removed (Z-API sends an empty emoji).
   */
  removed?: boolean;
  /**
   * A structured reply's answers as JSON (a WhatsApp Flow's `response_json`, parsed; a call
   * permission reply).
   */
  response?: {
    [k: string]: unknown;
  };
  /**
   * The id of the button or list row chosen.
   */
  selected_id?: string | null;
  /**
   * The media file's SHA-256, as the provider sent it (Meta: base64), to check a download.
   */
  sha256?: string | null;
  /**
   * Message text (text, replies, templates, interactive bodies, reaction emoji).
   */
  text?: string | null;
  /**
   * Title (documents, list replies, templates, products, events).
   */
  title?: string | null;
  /**
   * The provider's own name for it (Z-API's content key, Hub's `type`, Meta's `type`),
   * so nothing is lost when several wire kinds share one canonical kind.
   */
  wire_kind?: string | null;
}
/**
 * A contact shared in a message.
 */
export interface SharedContact {
  /**
   * The contact's formatted name.
   */
  name?: string | null;
  /**
   * Its phone numbers, as written in the card.
   */
  phones?: string[];
  /**
   * The WhatsApp ids among them.
   */
  wa_ids?: string[];
}
/**
 * An order: what was picked from which catalog.
 */
export interface Order {
  /**
   * The catalog the products come from.
   */
  catalog_id?: string | null;
  /**
   * That currency (ISO 4217).
   */
  currency?: string | null;
  /**
   * The products, as ordered.
   */
  items?: OrderItem[];
  /**
   * Sum of quantity × price over the items, when they share one currency.
   */
  total?: number | null;
}
/**
 * One line of an order.
 */
export interface OrderItem {
  /**
   * Its currency (ISO 4217).
   */
  currency?: string | null;
  /**
   * Price of one.
   */
  item_price?: number | null;
  /**
   * The product's id in the catalog (Meta `product_retailer_id`).
   */
  product_id?: string | null;
  /**
   * How many.
   */
  quantity?: number | null;
}
/**
 * Where a user came from when they tapped an ad or a post (Meta's `referral`).
 */
export interface Referral {
  /**
   * Its body text.
   */
  body?: string | null;
  /**
   * The click id to report conversions with (`ctwa_clid`).
   */
  click_id?: string | null;
  /**
   * Its headline.
   */
  headline?: string | null;
  /**
   * `image` or `video`.
   */
  media_type?: string | null;
  /**
   * The image, video or thumbnail shown.
   */
  media_url?: string | null;
  /**
   * The ad's or post's id.
   */
  source_id?: string | null;
  /**
   * `ad` or `post`.
   */
  source_type?: string | null;
  /**
   * Its URL.
   */
  source_url?: string | null;
}
/**
 * An error the provider reported (failed sends, disconnections).
 */
export interface EventError {
  /**
   * The provider's error code, when it has one.
   */
  code?: string | null;
  /**
   * The provider's message.
   */
  message: string;
}
/**
 * Where a message's media file is kept, or why it could not be (docs/events.md, "Media").
 */
export interface MediaFile {
  /**
   * How many times it was tried.
   */
  attempts: number;
  /**
   * The S3 bucket holding the file (archived).
   */
  bucket?: string | null;
  /**
   * Its size in bytes (archived).
   */
  bytes?: number | null;
  /**
   * Its content type, as the provider served it or named it (archived).
   */
  content_type?: string | null;
  /**
   * What went wrong, in words (failed).
   */
  detail?: string | null;
  /**
   * The message's event id (the `whatsapp.message.received` or `.sent` it belongs to).
   */
  event_id: string;
  /**
   * The object's key (archived): `media/<event id>`.
   */
  key?: string | null;
  /**
   * The WhatsApp message id.
   */
  message_id?: string | null;
  /**
   * Why it could not be archived (failed): e.g. `expired` (the provider answered 404, 403 or
   * 410), `too_large`, `not_allowed` (a host off the allow-list, a private address),
   * `checksum` (Meta's `sha256` did not match), `unavailable` (retries exhausted).
   */
  reason?: string | null;
  /**
   * SHA-256 of the file, 64 hex digits (archived).
   */
  sha256?: string | null;
}
/**
 * Where an event's `raw` is kept when the event does not carry it: in a body item of the
 * events table (`table`, `pk`, `sk`; its `body` attribute is the JSON, zstd-compressed) or in an
 * S3 object (`bucket`, `key`; the object is the JSON as is). Either way the text is exactly what
 * `data.raw` would hold: check it against `sha256` before use.
 */
export interface RawPointer {
  /**
   * The S3 bucket, when the body is an object.
   */
  bucket?: string | null;
  /**
   * Its length in bytes.
   */
  bytes: number;
  /**
   * The object's key (`bodies/<sha256>.json`).
   */
  key?: string | null;
  /**
   * The body item's partition key (`B#<sha256>`).
   */
  pk?: string | null;
  /**
   * SHA-256 of the raw JSON text (64 hex digits): the body's name wherever it is kept.
   */
  sha256: string;
  /**
   * The body item's sort key (`B`).
   */
  sk?: string | null;
  /**
   * The events table, when the body is a body item.
   */
  table?: string | null;
}
/**
 * Who sent a message.
 */
export interface Sender {
  /**
   * The sender's conversation key (the key of their direct chat) in a chat that is not theirs
   * (a group); in their own direct chat it is the chat's. Since schema 1.3.
   */
  key?: string | null;
  /**
   * Which of the aliases above this body did not show: learned from earlier bodies. Since
   * schema 1.3.
   */
  learned?: AliasKind[];
  /**
   * LID when known.
   */
  lid?: string | null;
  /**
   * Display name.
   */
  name?: string | null;
  /**
   * A parent business-scoped user id (Meta's `parent_user_id`), when known. Since schema 1.3.
   */
  parent_user_id?: string | null;
  /**
   * Phone number (digits) when known.
   */
  phone?: string | null;
  /**
   * A business-scoped user id (Meta's `user_id`/`from_user_id`, e.g. `US.1349…`): how Meta
   * names a user who hides their phone number behind a username.
   */
  user_id?: string | null;
  /**
   * The user's WhatsApp username, when the provider sends it.
   */
  username?: string | null;
}
/**
 * An instance gone silent, or back.
 */
export interface Silence {
  /**
   * When the instance's last event before the silence was received.
   */
  last_event_at: string;
  /**
   * When the silence was declared (on `whatsapp.instance.resumed`).
   */
  silent_since?: string | null;
  /**
   * Whether the window was derived from the instance's own traffic (not set on its endpoint).
   */
  window_derived: boolean;
  /**
   * The window that was exceeded, in seconds.
   */
  window_seconds: number;
}
/**
 * Where an event lives in DynamoDB (sent instead of `raw` when a queue message would be too big).
 */
export interface StoredItemPointer {
  /**
   * The item's partition key.
   */
  pk: string;
  /**
   * The item's sort key.
   */
  sk: string;
  /**
   * The events table.
   */
  table: string;
}
/**
 * The inbound messages of one burst in a chat, once the chat has been quiet for the endpoint's
 * window: what a bot answers once (docs/events.md, "Turns").
 */
export interface Turn {
  /**
   * The turn's messages, in the order they were sent (their `time`, then arrival).
   */
  messages: TurnMessage[];
  /**
   * The chat's turns so far, this one included (1 for the first).
   */
  number: number;
  /**
   * How long the chat was quiet before the turn closed, in milliseconds (the endpoint's window).
   */
  window_ms: number;
}
/**
 * One message of a turn.
 */
export interface TurnMessage {
  /**
   * The message's event id (the `whatsapp.message.received` published before this turn).
   */
  event_id: string;
  /**
   * The WhatsApp message id.
   */
  message_id?: string | null;
  /**
   * Its text (or caption), when it has one: at most 4,096 bytes, cut at a character boundary
   * (`text_truncated` then says so; the message's own event has it whole).
   */
  text?: string | null;
  /**
   * Set when `text` was cut.
   */
  text_truncated?: boolean;
  /**
   * The message's time.
   */
  time: string;
}
