// The JSON methods of every contract type: one pattern, kept together.

package event

// Each contract type decodes its known members into a method-less copy of itself
// ("plain", so json does not recurse into these methods) and keeps the rest in Extra.

var (
	internalEventV2Fields = jsonFields(internalEventV2Plain{})
	egressFields          = jsonFields(egressPlain{})
	userFields            = jsonFields(userPlain{})
	authFields            = jsonFields(authPlain{})
	routingStepFields     = jsonFields(routingStepPlain{})
	routingErrorFields    = jsonFields(routingErrorPlain{})
	externalEventV1Fields = jsonFields(externalEventV1Plain{})
	messageV1Fields       = jsonFields(messageV1Plain{})
	candidateV1Fields     = jsonFields(candidateV1Plain{})
	annotationV1Fields    = jsonFields(annotationV1Plain{})
	errorEntryV1Fields    = jsonFields(errorEntryV1Plain{})
	qosV1Fields           = jsonFields(qosV1Plain{})
)

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
	qosV1Plain           QOSV1
)

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *InternalEventV2) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*internalEventV2Plain)(x), &x.Extra, internalEventV2Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x InternalEventV2) MarshalJSON() ([]byte, error) {
	return marshalKeep(internalEventV2Plain(x), x.Extra)
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *Egress) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*egressPlain)(x), &x.Extra, egressFields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x Egress) MarshalJSON() ([]byte, error) { return marshalKeep(egressPlain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *User) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*userPlain)(x), &x.Extra, userFields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x User) MarshalJSON() ([]byte, error) { return marshalKeep(userPlain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *Auth) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*authPlain)(x), &x.Extra, authFields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x Auth) MarshalJSON() ([]byte, error) { return marshalKeep(authPlain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *RoutingStep) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*routingStepPlain)(x), &x.Extra, routingStepFields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x RoutingStep) MarshalJSON() ([]byte, error) { return marshalKeep(routingStepPlain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *RoutingError) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*routingErrorPlain)(x), &x.Extra, routingErrorFields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x RoutingError) MarshalJSON() ([]byte, error) {
	return marshalKeep(routingErrorPlain(x), x.Extra)
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *ExternalEventV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*externalEventV1Plain)(x), &x.Extra, externalEventV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x ExternalEventV1) MarshalJSON() ([]byte, error) {
	return marshalKeep(externalEventV1Plain(x), x.Extra)
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *MessageV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*messageV1Plain)(x), &x.Extra, messageV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x MessageV1) MarshalJSON() ([]byte, error) { return marshalKeep(messageV1Plain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *CandidateV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*candidateV1Plain)(x), &x.Extra, candidateV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x CandidateV1) MarshalJSON() ([]byte, error) { return marshalKeep(candidateV1Plain(x), x.Extra) }

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *AnnotationV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*annotationV1Plain)(x), &x.Extra, annotationV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x AnnotationV1) MarshalJSON() ([]byte, error) {
	return marshalKeep(annotationV1Plain(x), x.Extra)
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *ErrorEntryV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*errorEntryV1Plain)(x), &x.Extra, errorEntryV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x ErrorEntryV1) MarshalJSON() ([]byte, error) {
	return marshalKeep(errorEntryV1Plain(x), x.Extra)
}

// UnmarshalJSON implements json.Unmarshaler, keeping unknown members.
func (x *QOSV1) UnmarshalJSON(b []byte) error {
	return unmarshalKeep(b, (*qosV1Plain)(x), &x.Extra, qosV1Fields)
}

// MarshalJSON implements json.Marshaler, writing unknown members back.
func (x QOSV1) MarshalJSON() ([]byte, error) { return marshalKeep(qosV1Plain(x), x.Extra) }
