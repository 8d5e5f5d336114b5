// Package files is the file-transfer service of the DevLink server: uploads
// and downloads over application streams (JSP §5.12) and a stat command
// (JSP §5.9). Files live in one directory, by default <data dir>/files.
//
// Upload, stream label "file.put", metadata name, size (decimal bytes) and
// sha256 (64 hex digits):
//
//	client: STREAM_OPEN{file.put, name, size, sha256} + size bytes + FIN
//	server: "OK <size> <sha256>\n" + FIN       stored, digest verified
//	        "ERR <CODE> <reason>\n" + FIN      refused; nothing replaced
//
// Download, stream label "file.get", metadata name:
//
//	server: "OK <size> <sha256>\n" + size bytes + FIN
//	        "ERR <CODE> <reason>\n" + FIN
//
// Command "files" with body "stat NAME" replies with the JSON object
// {"size": N, "sha256": "hex"}, or NOT_FOUND / BAD_REQUEST.
//
// Names are 1..255 bytes of letters, digits, '.', '_' and '-', not starting
// with '.' ([ValidName]): no name can leave the directory. Files are capped
// at [DefaultMaxFileSize] unless configured otherwise.
package files
