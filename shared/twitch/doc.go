// Package twitch owns everything the project says to Twitch outside the EventSub
// socket itself: the Helix client (EventSub subscriptions, chat, whispers, users), the
// OAuth token lifecycle (validation, single-flight refresh coordinated across
// processes through a TokenStore), and the EventSub WebSocket protocol types.
//
// Every error it returns carries a *fault.Error (classify with fault.KindOf and
// fault.CodeOf); errors from Twitch also carry an *APIError with the HTTP status,
// Twitch's message and, for 429, which limit was hit. Tokens and the client secret
// never appear in errors or log lines.
//
// Base URLs are configurable so that tests and the local stack talk to the fake in
// package twitchtest instead of Twitch.
package twitch
