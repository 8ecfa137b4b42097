// Package wait lets tests wait for state instead of sleeping: a condition
// polled until it holds, or a value received from a channel, each bounded
// by a deadline so that a test that would hang fails instead, saying what
// it waited for.
//
// The deadline is generous (Deadline): it is there to end a test that is
// already broken, never to measure anything, so that a slow or busy
// machine does not make a passing test fail.
package wait
