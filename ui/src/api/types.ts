import type { components } from './schema';

type Schemas = components['schemas'];

export type Session = Schemas['SessionRead'];
export type Template = Schemas['TemplateRead'];
export type TemplateCreate = Schemas['TemplateCreate'];
export type TemplateUpdate = Schemas['TemplateUpdate'];
export type Agent = Schemas['AgentRead'];
export type AgentKey = Schemas['AgentKey'];
export type Replica = Schemas['ReplicaRead'];
export type User = Schemas['UserRead'];
export type UserCreate = Schemas['UserCreate'];
export type UserUpdate = Schemas['UserUpdate'];
export type UserRemoved = Schemas['UserRemoved'];
export type Overview = Schemas['Overview'];
export type OverviewPoint = Schemas['OverviewPoint'];
export type TokenResponse = Schemas['TokenResponse'];
export type AuditEvent = Schemas['AuditEventRead'];
export type AuditPage = Schemas['AuditPage'];

// The API declares both as literals, so the generated schema carries every value.
export type Role = User['role'];
export type SessionState = Session['state'];

export type ApiToken = Schemas['ApiTokenRead'];
export type ApiTokenCreate = Schemas['ApiTokenCreate'];
export type ApiTokenCreated = Schemas['ApiTokenCreated'];
export type MfaStatus = Schemas['MfaStatusRead'];
export type MfaEnrolment = Schemas['MfaEnrolment'];
export type MfaChallenge = Schemas['MfaChallenge'];
export type MfaLoginResponse = Schemas['MfaLoginResponse'];
