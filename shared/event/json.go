// The JSON methods of every contract type: one pattern, kept together.

package event

import "github.com/go-json-experiment/json/jsontext"

// Each contract type encodes through a method-less copy of itself ("plain", so the
// codec does not recurse into these methods), whose Extra is the `json:",embed"`
// member. MarshalJSON and UnmarshalJSON serve encoding/json callers;
// MarshalJSONTo and UnmarshalJSONFrom are what the codec calls for a contract type
// nested in another, streaming on the same encoder or decoder: every byte is scanned
// once, where encoding/json re-validated and compacted each nested level's output.

type (
	internalEventV2Plain InternalEventV2
	egressPlain          Egress
	userPlain            User
	authPlain            Auth
	routingStepPlain     RoutingStep
	routingErrorPlain    RoutingError
	externalEventV1Plain ExternalEventV1
	messageV1Plain       MessageV1
	candidateV1Plain     CandidateV1
	annotationV1Plain    AnnotationV1
	errorEntryV1Plain    ErrorEntryV1
	qOSV1Plain           QOSV1
	finalizeMessagePlain FinalizeMessage
)

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *InternalEventV2) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*internalEventV2Plain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *InternalEventV2) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*internalEventV2Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back. It is the
// hand-written encoder (encode.go): Normalize writes one envelope per notification.
func (x InternalEventV2) MarshalJSON() ([]byte, error) { return appendEvent(make([]byte, 0, 1024), &x) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *InternalEventV2) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*internalEventV2Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *Egress) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*egressPlain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *Egress) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*egressPlain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x Egress) MarshalJSON() ([]byte, error) { return marshalKeep((*egressPlain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *Egress) MarshalJSONTo(e *jsontext.Encoder) error { return encodeTo(e, (*egressPlain)(x)) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *User) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*userPlain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *User) UnmarshalJSONFrom(d *jsontext.Decoder) error { return decodeFrom(d, (*userPlain)(x)) }

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x User) MarshalJSON() ([]byte, error) { return marshalKeep((*userPlain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *User) MarshalJSONTo(e *jsontext.Encoder) error { return encodeTo(e, (*userPlain)(x)) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *Auth) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*authPlain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *Auth) UnmarshalJSONFrom(d *jsontext.Decoder) error { return decodeFrom(d, (*authPlain)(x)) }

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x Auth) MarshalJSON() ([]byte, error) { return marshalKeep((*authPlain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *Auth) MarshalJSONTo(e *jsontext.Encoder) error { return encodeTo(e, (*authPlain)(x)) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *RoutingStep) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*routingStepPlain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *RoutingStep) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*routingStepPlain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x RoutingStep) MarshalJSON() ([]byte, error) { return marshalKeep((*routingStepPlain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *RoutingStep) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*routingStepPlain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *RoutingError) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*routingErrorPlain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *RoutingError) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*routingErrorPlain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x RoutingError) MarshalJSON() ([]byte, error) { return marshalKeep((*routingErrorPlain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *RoutingError) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*routingErrorPlain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *ExternalEventV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*externalEventV1Plain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *ExternalEventV1) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*externalEventV1Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x ExternalEventV1) MarshalJSON() ([]byte, error) {
	return marshalKeep((*externalEventV1Plain)(&x))
}

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *ExternalEventV1) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*externalEventV1Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *MessageV1) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*messageV1Plain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *MessageV1) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*messageV1Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x MessageV1) MarshalJSON() ([]byte, error) { return marshalKeep((*messageV1Plain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *MessageV1) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*messageV1Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *CandidateV1) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*candidateV1Plain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *CandidateV1) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*candidateV1Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x CandidateV1) MarshalJSON() ([]byte, error) { return marshalKeep((*candidateV1Plain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *CandidateV1) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*candidateV1Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *AnnotationV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*annotationV1Plain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *AnnotationV1) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*annotationV1Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x AnnotationV1) MarshalJSON() ([]byte, error) { return marshalKeep((*annotationV1Plain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *AnnotationV1) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*annotationV1Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *ErrorEntryV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*errorEntryV1Plain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *ErrorEntryV1) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*errorEntryV1Plain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x ErrorEntryV1) MarshalJSON() ([]byte, error) { return marshalKeep((*errorEntryV1Plain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *ErrorEntryV1) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*errorEntryV1Plain)(x))
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *QOSV1) UnmarshalJSON(b []byte) error { return unmarshalKeep(b, (*qOSV1Plain)(x)) }

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *QOSV1) UnmarshalJSONFrom(d *jsontext.Decoder) error { return decodeFrom(d, (*qOSV1Plain)(x)) }

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x QOSV1) MarshalJSON() ([]byte, error) { return marshalKeep((*qOSV1Plain)(&x)) }

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *QOSV1) MarshalJSONTo(e *jsontext.Encoder) error { return encodeTo(e, (*qOSV1Plain)(x)) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *FinalizeMessage) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*finalizeMessagePlain)(x))
}

// UnmarshalJSONFrom is the streaming form of UnmarshalJSON.
func (x *FinalizeMessage) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	return decodeFrom(d, (*finalizeMessagePlain)(x))
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x FinalizeMessage) MarshalJSON() ([]byte, error) {
	return marshalKeep((*finalizeMessagePlain)(&x))
}

// MarshalJSONTo is the streaming form of MarshalJSON.
func (x *FinalizeMessage) MarshalJSONTo(e *jsontext.Encoder) error {
	return encodeTo(e, (*finalizeMessagePlain)(x))
}
