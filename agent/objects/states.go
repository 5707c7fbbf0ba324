package objects

// VMState is Instance.vm_state (nova/objects/fields.py:InstanceState, nova/compute/vm_states.py).
type VMState string

// vm_state values.
const (
	VMActive           VMState = "active"
	VMBuilding         VMState = "building"
	VMPaused           VMState = "paused"
	VMSuspended        VMState = "suspended"
	VMStopped          VMState = "stopped"
	VMRescued          VMState = "rescued"
	VMResized          VMState = "resized"
	VMSoftDeleted      VMState = "soft-delete"
	VMDeleted          VMState = "deleted"
	VMError            VMState = "error"
	VMShelved          VMState = "shelved"
	VMShelvedOffloaded VMState = "shelved_offloaded"
)

// TaskState is Instance.task_state (nova/compute/task_states.py). The empty TaskState
// stands for None ("no task"), encoded as JSON null.
type TaskState string

// task_state values.
const (
	TaskNone                       TaskState = ""
	TaskScheduling                 TaskState = "scheduling"
	TaskBlockDeviceMapping         TaskState = "block_device_mapping"
	TaskNetworking                 TaskState = "networking"
	TaskSpawning                   TaskState = "spawning"
	TaskImageSnapshot              TaskState = "image_snapshot"
	TaskImageSnapshotPending       TaskState = "image_snapshot_pending"
	TaskImagePendingUpload         TaskState = "image_pending_upload"
	TaskImageUploading             TaskState = "image_uploading"
	TaskImageBackup                TaskState = "image_backup"
	TaskUpdatingPassword           TaskState = "updating_password"
	TaskResizePrep                 TaskState = "resize_prep"
	TaskResizeMigrating            TaskState = "resize_migrating"
	TaskResizeMigrated             TaskState = "resize_migrated"
	TaskResizeFinish               TaskState = "resize_finish"
	TaskResizeReverting            TaskState = "resize_reverting"
	TaskResizeConfirming           TaskState = "resize_confirming"
	TaskRebooting                  TaskState = "rebooting"
	TaskRebootPending              TaskState = "reboot_pending"
	TaskRebootStarted              TaskState = "reboot_started"
	TaskRebootingHard              TaskState = "rebooting_hard"
	TaskRebootPendingHard          TaskState = "reboot_pending_hard"
	TaskRebootStartedHard          TaskState = "reboot_started_hard"
	TaskPausing                    TaskState = "pausing"
	TaskUnpausing                  TaskState = "unpausing"
	TaskSuspending                 TaskState = "suspending"
	TaskResuming                   TaskState = "resuming"
	TaskPoweringOff                TaskState = "powering-off"
	TaskPoweringOn                 TaskState = "powering-on"
	TaskRescuing                   TaskState = "rescuing"
	TaskUnrescuing                 TaskState = "unrescuing"
	TaskRebuilding                 TaskState = "rebuilding"
	TaskRebuildBlockDeviceMapping  TaskState = "rebuild_block_device_mapping"
	TaskRebuildSpawning            TaskState = "rebuild_spawning"
	TaskMigrating                  TaskState = "migrating"
	TaskDeleting                   TaskState = "deleting"
	TaskSoftDeleting               TaskState = "soft-deleting"
	TaskRestoring                  TaskState = "restoring"
	TaskShelving                   TaskState = "shelving"
	TaskShelvingImagePendingUpload TaskState = "shelving_image_pending_upload"
	TaskShelvingImageUploading     TaskState = "shelving_image_uploading"
	TaskShelvingOffloading         TaskState = "shelving_offloading"
	TaskUnshelving                 TaskState = "unshelving"
)

// Primitive returns the JSON value of the task state: nil for TaskNone, else the string.
func (t TaskState) Primitive() any {
	if t == TaskNone {
		return nil
	}
	return string(t)
}

// PowerState is Instance.power_state, an index into nova's InstancePowerState.ALL
// (nova/compute/power_state.py); the gaps (2, 5) are retired states.
type PowerState int

// power_state values.
const (
	PowerNoState   PowerState = 0
	PowerRunning   PowerState = 1
	PowerPaused    PowerState = 3
	PowerShutdown  PowerState = 4
	PowerCrashed   PowerState = 6
	PowerSuspended PowerState = 7
)

// String returns nova's name for the power state (as shown by nova-api).
func (p PowerState) String() string {
	switch p {
	case PowerNoState:
		return "pending"
	case PowerRunning:
		return "running"
	case PowerPaused:
		return "paused"
	case PowerShutdown:
		return "shutdown"
	case PowerCrashed:
		return "crashed"
	case PowerSuspended:
		return "suspended"
	}
	return "unknown"
}
