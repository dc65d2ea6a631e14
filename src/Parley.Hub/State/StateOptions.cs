namespace Parley.Hub.State;

/// <summary>Limits of shared state (<c>state:</c> topics). Config section <c>state</c> (env <c>PARLEY_STATE__…</c>).</summary>
public sealed class StateOptions
{
    /// <summary>Largest value, in bytes of its JSON text. Default 64 KiB.</summary>
    public int MaxValueBytes { get; set; } = 64 * 1024;

    /// <summary>Keys one namespace may hold. Default 10,000.</summary>
    public int MaxKeysPerNamespace { get; set; } = 10_000;

    /// <summary>
    /// Bytes of keys and values one namespace may hold. Default 1 MiB. A joiner receives the whole
    /// namespace in its join reply, so the budget in force is at most half the hub's outbound queue
    /// limit (<see cref="EffectiveNamespaceBytes"/>).
    /// </summary>
    public long MaxNamespaceBytes { get; set; } = 1024 * 1024;

    /// <summary><see cref="MaxNamespaceBytes"/>, capped at half of <paramref name="hub"/>'s <see cref="HubOptions.MaxOutboundQueueBytes"/>.</summary>
    public long EffectiveNamespaceBytes(HubOptions hub)
    {
        ArgumentNullException.ThrowIfNull(hub);
        return Math.Min(MaxNamespaceBytes, hub.MaxOutboundQueueBytes / 2);
    }

    /// <summary>Throws when a limit is out of range (naming the setting and its bounds).</summary>
    public void Validate()
    {
        if (MaxValueBytes is < 16 or > 16 * 1024 * 1024)
        {
            throw new ArgumentException($"{nameof(MaxValueBytes)} must be in [16, 16777216]");
        }
        if (MaxKeysPerNamespace is < 1 or > 10_000_000)
        {
            throw new ArgumentException($"{nameof(MaxKeysPerNamespace)} must be in [1, 10000000]");
        }
        if (MaxNamespaceBytes < MaxValueBytes || MaxNamespaceBytes > 1L << 32)
        {
            throw new ArgumentException($"{nameof(MaxNamespaceBytes)} must be in [{nameof(MaxValueBytes)}, 4294967296]");
        }
    }
}
