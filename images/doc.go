// Package images turns Glance QCOW2 images into VM-like container images, streamed and unmounted.
package images
