"""API models of the TOTP second factor (api/mfa.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from streamspace.control_plane.api.schemas import StrictBody, TokenResponse

CODE = Field(None, min_length=6, max_length=10, description="a 6-digit code from the app")
RECOVERY = Field(None, min_length=16, max_length=40, description="a one-time recovery code")


class OneProof(StrictBody):
    """Exactly one of its optional proofs."""

    @model_validator(mode="after")
    def _one(self) -> OneProof:
        given = [name for name, value in self.__dict__.items() if name != "challenge" and value]
        if len(given) != 1:
            raise ValueError(f"give exactly one of: {', '.join(self.proofs())}")
        return self

    @classmethod
    def proofs(cls) -> list[str]:
        return [name for name in cls.model_fields if name != "challenge"]


class MfaChallenge(BaseModel):
    challenge: str = Field(..., description="send it to POST /api/v1/auth/login/mfa")
    expires_in: int
    enrol: bool = Field(
        ..., description="the org requires a factor and the user has none: enrol first"
    )


class MfaErrorDetail(BaseModel):
    code: str = Field(..., description="mfa_required or mfa_enrolment_required")
    message: str


class MfaRequired(BaseModel):
    """The password was right; a second step is needed (401, so that a client that knows
    nothing of it reports a failed login rather than carry on without a token)."""

    error: MfaErrorDetail
    mfa: MfaChallenge


class MfaLogin(OneProof):
    challenge: str = Field(..., min_length=1, max_length=4096)
    code: str | None = CODE
    recovery_code: str | None = RECOVERY


class MfaLoginEnrol(StrictBody):
    challenge: str = Field(..., min_length=1, max_length=4096)


class MfaLoginResponse(TokenResponse):
    recovery_codes: list[str] | None = Field(
        None, description="when this login completed an enrolment: shown once, keep them"
    )


class MfaEnrolment(BaseModel):
    secret: str = Field(..., description="base32, for typing into an app by hand")
    otpauth_uri: str
    qr_svg: str = Field(..., description="the URI as a QR code: an SVG data: URI for an <img>")


class MfaConfirm(StrictBody):
    code: str = Field(..., min_length=6, max_length=10)


class MfaProof(OneProof):
    code: str | None = CODE
    password: str | None = Field(None, min_length=1, max_length=1024)


class MfaRecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(..., description="shown once; each works once")


class MfaStatusRead(BaseModel):
    enabled: bool
    confirmed_at: datetime | None
    recovery_codes_left: int
    required: bool = Field(..., description="your org requires a second factor")
    available: bool = Field(
        ..., description="false for users an identity provider signs in: it does their MFA"
    )


class OrgMfa(StrictBody):
    required: bool


class OrgMfaRead(BaseModel):
    org_id: str
    required: bool
