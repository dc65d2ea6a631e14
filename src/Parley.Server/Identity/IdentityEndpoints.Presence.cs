using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parley.Hub;
using Parley.Hub.Auth;
using Parley.Hub.Presence;
using Parley.Identity;

namespace Parley.Server.Identity;

// ASP0016 misreads the inner handler lambdas as request delegates (as in IdentityEndpoints.cs).
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    private const int MaxPresenceTopicLength = 256;

    // GET /api/presence[?topic=T]: who is on which topic. A caller sees a topic's presence exactly when
    // the hub's join authorizer would let it join: a private channel shows its presence to its members
    // and hub admins only.
    private static void MapPresence(IEndpointRouteBuilder app, IdentityService identity, ParleyHub hub, bool anonymous)
    {
        app.MapGet("/api/presence", context =>
            anonymous && context.Request.Headers.Authorization.Count == 0
                ? RunAsync(context, () => PresenceAsync(context, hub, ConnectionPrincipal.Anonymous("http")))
                : HandleAuthenticatedAsync(context, identity, readBody: false, (caller, _) => PresenceAsync(context, hub, IdentityAuthenticator.ToPrincipal(caller))));
    }

    private static async Task<(int Status, Action<Utf8JsonWriter> Write)> PresenceAsync(HttpContext context, ParleyHub hub, ConnectionPrincipal principal)
    {
        var topic = context.Request.Query["topic"].ToString();
        var cancellationToken = context.RequestAborted;
        var visible = new List<PresenceSnapshot>();
        if (topic.Length > 0)
        {
            if (topic.Length > MaxPresenceTopicLength || !topic.Contains(':', StringComparison.Ordinal))
            {
                throw Bad("invalid_topic", $"topic must be a topic name like room:ops (at most {MaxPresenceTopicLength} characters)");
            }
            if (await hub.JoinAuthorizer.AuthorizeJoinAsync(principal, topic, default, cancellationToken) is not null)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden",
                    $"you may not join {topic}, so you may not see who is there: a private channel shows its presence to its members and hub admins");
            }
            visible.AddRange(hub.Presence.Snapshot(topic));
        }
        else
        {
            foreach (var snapshot in hub.Presence.Snapshot())
            {
                if (await hub.JoinAuthorizer.AuthorizeJoinAsync(principal, snapshot.Topic, default, cancellationToken) is null)
                {
                    visible.Add(snapshot);
                }
            }
        }
        return (StatusCodes.Status200OK, w =>
        {
            w.WritePropertyName("topics");
            w.WriteStartArray();
            foreach (var snapshot in visible)
            {
                w.WriteStartObject();
                w.WriteString("topic", snapshot.Topic);
                w.WritePropertyName("presences");
                w.WriteStartObject();
                foreach (var member in snapshot.Members)
                {
                    w.WritePropertyName(member.Key);
                    w.WriteStartObject();
                    w.WritePropertyName("metas");
                    w.WriteStartArray();
                    foreach (var meta in member.Metas)
                    {
                        meta.Write(w);
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
    }
}
