package voiceproto

// NotifyBitrate is the "type" header of the NOTIFY a gateway sends a
// publisher with the estimate of its uplink for one track
// (spec/JSP-media.md §13.17): headers "track" and "bitrate" (bit/s, a
// decimal integer). The publisher splits it over the track's layers,
// lowest first, and hands each layer's share to its encoder.
const NotifyBitrate = "voice.bitrate"
