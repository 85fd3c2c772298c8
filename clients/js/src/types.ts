// The API's shapes, by name, from the types generated out of docs/openapi.json.

import type { components, operations } from './openapi.js';

type Schemas = components['schemas'];

export type Message = Schemas['Message'];
export type MessagePage = Schemas['MessagePage'];
export type NewMessage = Schemas['NewMessage'];
export type Posted = Schemas['Posted'];
export type OpenedThread = Schemas['OpenedThread'];
export type Closed = Schemas['Closed'];
export type Retracted = Schemas['Retracted'];
export type ReadMarker = Schemas['ReadMarker'];
export type InboxPage = Schemas['InboxPage'];
export type InboxThread = Schemas['InboxThread'];
export type UploadTicket = Schemas['UploadTicket'];
export type RegisterRequestBody = Schemas['RegisterRequestBody'];
export type ServiceRequest = Schemas['ServiceRequestBody'];
export type HoldRequest = Schemas['HoldRequest'];
export type HoldState = Schemas['HoldState'];
export type RecordQueued = Schemas['RecordQueued'];
export type ChannelAuth = Schemas['ChannelAuth'];
export type ListQuery = NonNullable<operations['list_messages']['parameters']['query']>;
export type InboxQuery = NonNullable<operations['inbox']['parameters']['query']>;
/** An image type the service accepts. */
export type ImageType = 'image/jpeg' | 'image/png' | 'image/webp';
/** A FHIR R4 Bundle (collection) of the thread's messages. */
export type FhirBundle = { resourceType: 'Bundle'; type: string; entry?: unknown[] } & Record<string, unknown>;
