using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Hub.Channels;
using Parley.Protocol;

namespace Parley.Hub.Lobby;

/// <summary>
/// <c>hub:lobby</c>: the hub's own channel. Every authenticated socket may join it; the hub pushes
/// session events there (<c>token_expired</c> shortly before the socket's credential runs out) and
/// takes session commands (<c>token.refresh {access_token}</c>: the authenticator re-validates the new
/// credential and, when it names the same principal, the socket carries on with it).
/// </summary>
public sealed class LobbyChannel(ParleyHub hub) : IChannelHandler
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Func<Connections.HubConnection, PhoenixMessage, CancellationToken, ValueTask>> _commands =
        new(StringComparer.Ordinal);

    /// <summary>
    /// Adds a command other components serve on the lobby (identity's admin and channel operations).
    /// The handler must reply to the message. Registration happens at start-up; an event has one handler.
    /// </summary>
    public void Register(string @event, Func<Connections.HubConnection, PhoenixMessage, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (@event == TokenRefreshEvent || !_commands.TryAdd(@event, handler))
        {
            throw new InvalidOperationException($"the lobby event '{@event}' already has a handler");
        }
    }

    /// <summary>The one topic served.</summary>
    public const string Topic = "hub:lobby";

    /// <summary>Pushed before the socket's credential expires: <c>{expires_at}</c> (Unix ms).</summary>
    public const string TokenExpiredEvent = "token_expired";

    /// <summary>Pushed by the client with <c>{access_token}</c> to extend the socket's credential in-band.</summary>
    public const string TokenRefreshEvent = "token.refresh";

    public string TopicPrefix => "hub:";

    public ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Topic != Topic)
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, $"the only hub: topic is {Topic}");
            return ValueTask.FromResult<Subscriber?>(null);
        }
        var topic = hub.Topics.GetOrAdd(Topic);
        Subscriber? subscriber;
        while ((subscriber = topic.BeginSubscribe(connection, message.JoinRef!, storeHead: 0, out _)) is null)
        {
            topic = hub.Topics.GetOrAdd(Topic);
        }
        var principal = connection.Principal;
        connection.Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, principal, static (w, p) =>
        {
            w.WriteStartObject();
            w.WriteString("name"u8, p.Name);
            if (p.Roles.Count > 0)
            {
                w.WriteString("role"u8, p.Roles[0]);
            }
            if (p.ExpiresAtMs is { } expires)
            {
                w.WriteNumber("expires_at"u8, expires);
            }
            w.WriteEndObject();
        }));
        topic.CompleteSubscribe(subscriber);
        return ValueTask.FromResult<Subscriber?>(subscriber);
    }

    public async ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Event != TokenRefreshEvent)
        {
            if (_commands.TryGetValue(message.Event, out var command))
            {
                await command(connection, message, cancellationToken);
                return;
            }
            connection.ReplyError(message, ErrorReasons.UnknownEvent, $"{Topic} takes {TokenRefreshEvent} and {string.Join(", ", _commands.Keys.Order(StringComparer.Ordinal))}");
            return;
        }
        if (message.Payload.ValueKind != JsonValueKind.Object
            || !message.Payload.TryGetProperty("access_token", out var tokenElement)
            || tokenElement.ValueKind != JsonValueKind.String
            || tokenElement.GetString() is not { Length: > 0 } token)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "token.refresh needs {access_token}");
            return;
        }
        var result = await hub.Authenticator.AuthenticateAsync(
            new ConnectRequest(connection.Id, token, null, new Dictionary<string, string>()), cancellationToken);
        if (!result.Accepted)
        {
            connection.ReplyError(message, ErrorReasons.InvalidToken, result.RejectReason);
            return;
        }
        if (!connection.ReplacePrincipal(result.Principal!))
        {
            connection.ReplyError(message, ErrorReasons.InvalidToken, "the new credential belongs to someone else: a socket keeps its identity");
            return;
        }
        connection.Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, result.Principal!.ExpiresAtMs, static (w, expires) =>
        {
            w.WriteStartObject();
            if (expires is { } e)
            {
                w.WriteNumber("expires_at"u8, e);
            }
            w.WriteEndObject();
        }));
    }

    /// <summary>The <c>token_expired</c> push for one connection.</summary>
    public static byte[] TokenExpiredFrame(long expiresAtMs) =>
        WireFrames.Text(null, null, Topic, TokenExpiredEvent, expiresAtMs, static (w, e) =>
        {
            w.WriteStartObject();
            w.WriteNumber("expires_at"u8, e);
            w.WriteEndObject();
        });
}
