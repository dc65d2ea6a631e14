using System.Text.Json;
using Parley.Hub.Fleet;

namespace Parley.Server.Streams;

/// <summary>
/// <c>/ws/instances?include_archived=true|false</c> (docs/protocol.md §16): the plain-WebSocket twin of
/// <c>fleet:instances</c>. First frame <c>snapshot {instances, include_archived}</c>, then
/// <c>status_changed</c>, <c>instance_created</c>, <c>instance_archived</c>, <c>instance_unarchived</c> and
/// <c>instance_deleted</c> with the same payloads; the client frame <c>set_include_archived {value}</c> (or
/// <c>{include_archived}</c>) changes the filter and is answered with a fresh snapshot.
/// </summary>
internal sealed class InstanceStream(FleetService fleet) : IPlainStream
{
    /// <summary>The path served.</summary>
    public const string StreamPath = "/ws/instances";

    public string Path => StreamPath;

    public ValueTask<IPlainStreamSession> OpenAsync(PlainStreamConnection connection, CancellationToken cancellationToken)
    {
        var include = false;
        foreach (var (name, value) in connection.Params)
        {
            if (name != "include_archived")
            {
                throw PlainStreamException.BadParams($"unknown parameter '{(name.Length > 32 ? name[..32] : name)}': /ws/instances takes include_archived");
            }
            include = value switch
            {
                "true" or "1" => true,
                "false" or "0" => false,
                _ => throw PlainStreamException.BadParams("include_archived must be true or false"),
            };
        }
        return ValueTask.FromResult<IPlainStreamSession>(new Session(fleet, connection, include));
    }

    private sealed class Session(FleetService fleet, PlainStreamConnection connection, bool includeArchived) : IPlainStreamSession
    {
        private volatile bool _include = includeArchived;
        private volatile bool _disposed;

        // Under the fleet gate, so the snapshot is exactly what precedes the next change.
        private void SendSnapshot(IReadOnlyList<InstanceView> all) =>
            connection.SendSnapshot(PlainFrames.Text((all, _include), static (w, s) => FleetJson.WriteSnapshot(w, FleetChannel.Visible(s.all, s.Item2), s.Item2, type: "snapshot")));

        private void OnChanged(FleetEvent change)
        {
            if (FleetChannel.Hears(change, _include))
            {
                connection.SendDelta(PlainFrames.Text(change, static (w, c) => FleetJson.WriteEvent(w, c, withType: true)));
            }
        }

        public void Start() => _ = fleet.ReadAsync(all =>
        {
            if (!_disposed)
            {
                SendSnapshot(all);
                fleet.Changed += OnChanged;
            }
            return 0;
        }).AsTask();

        public void Resync() => _ = fleet.ReadAsync(all =>
        {
            SendSnapshot(all);
            return 0;
        }).AsTask();

        public async ValueTask<bool> OnClientFrameAsync(string type, JsonElement frame, CancellationToken cancellationToken)
        {
            if (type != FleetChannel.SetIncludeArchivedEvent)
            {
                return false;
            }
            if (!TryInclude(frame, out var include))
            {
                connection.Fail(400, Parley.Protocol.StreamErrorCodes.BadParams, "set_include_archived takes {\"value\": true|false}");
                return true;
            }
            await fleet.ReadAsync(all =>
            {
                _include = include;
                SendSnapshot(all);
                return 0;
            }, cancellationToken);
            return true;
        }

        // Under the gate like Start: whichever runs second sees the other (Start checks _disposed there).
        public void Dispose()
        {
            _disposed = true;
            _ = fleet.ReadAsync(_ =>
            {
                fleet.Changed -= OnChanged;
                return 0;
            }).AsTask();
        }

        private static bool TryInclude(JsonElement frame, out bool include)
        {
            include = false;
            foreach (var name in (ReadOnlySpan<string>)["value", "include_archived"])
            {
                if (frame.TryGetProperty(name, out var value))
                {
                    include = value.ValueKind == JsonValueKind.True;
                    return value.ValueKind is JsonValueKind.True or JsonValueKind.False;
                }
            }
            return false;
        }
    }
}
