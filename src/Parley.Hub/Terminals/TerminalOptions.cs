namespace Parley.Hub.Terminals;

/// <summary>Terminal sessions on the hub (docs/protocol.md §17). Bound from the <c>terminals</c> configuration section.</summary>
public sealed class TerminalOptions
{
    /// <summary>
    /// Bytes a viewer's socket may have queued before its output frames are dropped and it is sent <c>resync</c>.
    /// Null (the default): 2 MiB, or half of <c>hub.MaxOutboundQueueBytes</c> when that is less.
    /// </summary>
    public int? ViewerQueueBytes { get; set; }

    /// <summary>Most bytes one <c>fetch_output</c> or <c>fetch_input</c> returns. Null (the default): 1 MiB, or half of <c>hub.MaxOutboundQueueBytes</c> when that is less.</summary>
    public int? MaxFetchBytes { get; set; }

    /// <summary>What <see cref="ViewerQueueBytes"/> comes to on a hub with <paramref name="hub"/>'s limits.</summary>
    public int EffectiveViewerQueueBytes(HubOptions hub) => ViewerQueueBytes ?? (int)Math.Min(2L * 1024 * 1024, hub.MaxOutboundQueueBytes / 2);

    /// <summary>What <see cref="MaxFetchBytes"/> comes to on a hub with <paramref name="hub"/>'s limits.</summary>
    public int EffectiveMaxFetchBytes(HubOptions hub) => MaxFetchBytes ?? (int)Math.Min(1024 * 1024, hub.MaxOutboundQueueBytes / 2);

    /// <summary>Most decoded bytes in one viewer <c>input</c>. Default 64 KiB.</summary>
    public int MaxInputBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// How long a session whose owner connection is gone stays listed before it is pruned from the registry
    /// (the owner may still come back and revive it). Null (the default) means the hub's idle timeout.
    /// </summary>
    public TimeSpan? OwnerGrace { get; set; }

    /// <summary>How often <c>session_updated</c> may go out per session, and how bytes/s is measured. Default 1 s.</summary>
    public TimeSpan UpdateInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the hub keeps the recording of a session that is no longer listed (it ended, or its owner has been
    /// gone past the grace), counted from its end or last activity; then its files under <c>&lt;data&gt;/terminals</c>
    /// are deleted. Default 7 days.
    /// </summary>
    public TimeSpan RetainEnded { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Most bytes the recordings of sessions no longer listed may take under <c>&lt;data&gt;/terminals</c>: past it, the
    /// oldest of them are deleted first. Live sessions' recordings are neither counted nor deleted. Default 10 GiB.
    /// </summary>
    public long MaxRecordingBytes { get; set; } = 10L * 1024 * 1024 * 1024;

    /// <summary>How often <see cref="RetainEnded"/> and <see cref="MaxRecordingBytes"/> are applied. Default 1 minute.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Throws when a value is out of range.</summary>
    public void Validate(HubOptions hub)
    {
        ArgumentNullException.ThrowIfNull(hub);
        if (EffectiveViewerQueueBytes(hub) is var queue && (queue < 64 * 1024 || queue > hub.MaxOutboundQueueBytes / 2))
        {
            throw new ArgumentException($"terminals.ViewerQueueBytes must be between 65536 and half of hub.MaxOutboundQueueBytes ({hub.MaxOutboundQueueBytes / 2})");
        }
        if (EffectiveMaxFetchBytes(hub) is var fetch && (fetch is < 1024 or > 16 * 1024 * 1024 || fetch > hub.MaxOutboundQueueBytes / 2))
        {
            throw new ArgumentException("terminals.MaxFetchBytes must be between 1024 and 16 MiB, and at most half of hub.MaxOutboundQueueBytes");
        }
        if (MaxInputBytes is < 16 or > 1024 * 1024)
        {
            throw new ArgumentException("terminals.MaxInputBytes must be between 16 and 1048576");
        }
        if (OwnerGrace is { } grace && (grace < TimeSpan.FromMilliseconds(100) || grace > TimeSpan.FromDays(1)))
        {
            throw new ArgumentException("terminals.OwnerGrace must be between 100 ms and 1 day");
        }
        if (RetainEnded < TimeSpan.FromSeconds(1) || RetainEnded > TimeSpan.FromDays(3650))
        {
            throw new ArgumentException("terminals.RetainEnded must be between 1 second and 3650 days");
        }
        if (MaxRecordingBytes < 1024 * 1024)
        {
            throw new ArgumentException("terminals.MaxRecordingBytes must be at least 1 MiB");
        }
        if (SweepInterval < TimeSpan.FromMilliseconds(50) || SweepInterval > TimeSpan.FromDays(1))
        {
            throw new ArgumentException("terminals.SweepInterval must be between 50 ms and 1 day");
        }
        if (UpdateInterval < TimeSpan.FromMilliseconds(50) || UpdateInterval > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException("terminals.UpdateInterval must be between 50 ms and 1 minute");
        }
    }
}
